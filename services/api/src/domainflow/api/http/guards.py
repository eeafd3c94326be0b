"""Who is calling: the bearer key to a team and its permissions; guards read as seed 001's table."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from domainflow.api.domain.keys import Principal, grants
from domainflow.api.http.envelope import header_of
from domainflow.api.http.problems import ApiError
from domainflow.api.http.text import refuse_unstorable_in_url
from domainflow.api.teams.keyring import KeyRing

AnyConnection = ASGIConnection[Any, Any, Any, Any]


def _bearer(connection: AnyConnection) -> str:
    header = header_of(connection, b"authorization") or ""
    scheme, _, token = header.partition(" ")
    if not header:
        raise ApiError(401, "unauthorized", "Send your API key as 'Authorization: Bearer <key>'.")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "The Authorization header must be 'Bearer <key>'.")
    return token.strip()


async def authenticate(connection: AnyConnection) -> Principal:
    keyring: KeyRing = connection.app.state.keyring
    principal = await keyring.principal(_bearer(connection))
    if principal is None:
        raise ApiError(401, "unauthorized", "This API key is unknown or was revoked.")
    return principal


def requires(permission: str) -> Guard:
    """A guard: 401 without a valid key, 403 when the key lacks `permission`."""

    async def guard(connection: AnyConnection, _: BaseRouteHandler) -> None:
        principal = await authenticate(connection)
        if not grants(principal.permissions, permission):
            raise ApiError(
                403,
                "forbidden",
                f"This API key lacks the '{permission}' permission.",
                {"required_permission": permission},
            )
        connection.scope["state"]["principal"] = principal
        # Before any handler hands them to PostgreSQL, which stores no NUL.
        query = connection.query_params.dict() if connection.scope["query_string"] else {}
        refuse_unstorable_in_url(connection.path_params, dict(query))

    guard.__name__ = f"requires_{permission.replace('.', '_').replace('*', 'any')}"
    return guard


def principal_of(connection: AnyConnection) -> Principal:
    principal = connection.scope["state"].get("principal")
    if not isinstance(principal, Principal):
        raise ApiError(401, "unauthorized", "Send your API key as 'Authorization: Bearer <key>'.")
    return principal
