"""The envelope every JSON answer travels in: `{ok, data, meta: {request_id}}`."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec
from litestar import Request, Response

T = TypeVar("T")

AnyRequest = Request[Any, Any, Any]


class Meta(msgspec.Struct):
    request_id: str


class Envelope(msgspec.Struct, Generic[T]):
    ok: bool
    data: T
    meta: Meta


def request_id_of(request: AnyRequest) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def respond(
    request: AnyRequest, data: T, status: int = 200, *, location: str | None = None
) -> Response[Envelope[T]]:
    return Response(
        Envelope(ok=True, data=data, meta=Meta(request_id=request_id_of(request))),
        status_code=status,
        headers={"Location": location} if location else None,
    )
