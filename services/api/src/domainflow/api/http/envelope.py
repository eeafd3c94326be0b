"""The envelope every JSON answer travels in: `{ok, data, meta: {request_id}}`."""

from __future__ import annotations

from typing import Any, Generic, TypeVar, cast

import msgspec
from litestar import MediaType, Request, Response
from litestar.connection import ASGIConnection
from litestar.response.base import ASGIResponse

T = TypeVar("T")

AnyRequest = Request[Any, Any, Any]


class Meta(msgspec.Struct, omit_defaults=True):
    request_id: str
    #: The client's own `X-Request-Id`, when it sent a well-formed one.
    client_request_id: str | None = None


class Envelope(msgspec.Struct, Generic[T]):
    ok: bool
    data: T
    meta: Meta


class Pagination(msgspec.Struct):
    has_more: bool
    next_cursor: str | None


class Listing(msgspec.Struct, Generic[T]):
    """A page of a list: the items as `data`, where to go next beside them."""

    ok: bool
    data: list[T]
    pagination: Pagination
    meta: Meta


def header_of(connection: ASGIConnection[Any, Any, Any, Any], name: bytes) -> str | None:
    """One request header (`name` lower-case), read from the raw ASGI pairs: building
    Litestar's header object for the one or two a hot read needs cost more than the read's
    own view of the domain."""
    for key, value in connection.scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def request_id_of(request: AnyRequest) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def meta_of(request: AnyRequest) -> Meta:
    client = request.scope.get("state", {}).get("client_request_id")
    return Meta(request_id=request_id_of(request), client_request_id=client)


def etag_matches(header: str | None, etag: str) -> bool:
    """RFC 9110's weak comparison of `If-None-Match` (a list, or `*`) with our ETag."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in header.split(","))


def respond_list(
    request: AnyRequest, items: list[T], has_more: bool, next_cursor: str | None
) -> Response[Listing[T]]:
    return Response(
        Listing(
            ok=True,
            data=items,
            pagination=Pagination(has_more=has_more, next_cursor=next_cursor),
            meta=meta_of(request),
        )
    )


class EncodedJson(Response[bytes]):
    """A 200 whose JSON body is already encoded, sent as it is with its `ETag`: Litestar's
    general path for a `Response` (header objects, media type and encoder lookups, rendering)
    cost the hot read as much as assembling its answer."""

    __slots__ = ("_etag",)

    def __init__(self, body: bytes, *, etag: str | None) -> None:
        super().__init__(body, media_type=MediaType.JSON)
        self._etag = etag

    def to_asgi_response(self, app: Any, request: AnyRequest, **_: Any) -> ASGIResponse:
        headers = {"etag": self._etag} if self._etag else None
        return ASGIResponse(body=self.content, headers=headers, media_type=MediaType.JSON)


def respond_encoded(
    request: AnyRequest, data: bytes, *, etag: str | None = None
) -> Response[Envelope[Any]]:
    """`respond` for data already encoded as JSON (to hash it for an ETag): the envelope is
    assembled around those bytes, so the hot read encodes its view once, not twice."""
    meta = msgspec.json.encode(meta_of(request))
    body = b'{"ok":true,"data":' + data + b',"meta":' + meta + b"}"
    return cast("Response[Envelope[Any]]", EncodedJson(body, etag=etag))


def respond(
    request: AnyRequest,
    data: T,
    status: int = 200,
    *,
    location: str | None = None,
    etag: str | None = None,
) -> Response[Envelope[T]]:
    headers = {}
    if location:
        headers["Location"] = location
    if etag:
        headers["ETag"] = etag
    return Response(
        Envelope(ok=True, data=data, meta=meta_of(request)),
        status_code=status,
        headers=headers or None,
    )
