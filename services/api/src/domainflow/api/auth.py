"""Who is calling: API keys to teams and permissions; guards that read like seed 001's table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from domainflow.api.adapters import repository
from domainflow.api.domain.keys import grants, hash_key
from domainflow.api.errors import ApiError
from domainflow.kit.database import Database


@dataclass(frozen=True)
class Principal:
    team_id: int
    team_public_id: str
    key_id: str
    permissions: tuple[str, ...]


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise ApiError(
            401,
            "unauthorized",
            "Send your API key as 'Authorization: Bearer <key>'.",
        )
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "The Authorization header must be 'Bearer <key>'.",
        )
    return token.strip()


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    token = _bearer(connection)
    db: Database = connection.app.state.db
    async with db.pool.acquire() as conn:
        key = await repository.key_by_hash(conn, hash_key(token))
    if key is None or key.revoked:
        raise ApiError(401, "unauthorized", "This API key is unknown or was revoked.")
    return Principal(key.team_id, key.team_public_id, key.key_id, key.permissions)


def requires(permission: str) -> Guard:
    """A guard: 401 without a valid key, 403 when the key lacks `permission`."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = await authenticate(connection)
        if not grants(principal.permissions, permission):
            raise ApiError(
                403,
                "forbidden",
                f"This API key lacks the '{permission}' permission.",
                {"required_permission": permission},
            )
        connection.scope["state"]["principal"] = principal

    guard.__name__ = f"requires_{permission.replace('.', '_').replace('*', 'any')}"
    return guard


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal = connection.scope["state"].get("principal")
    if not isinstance(principal, Principal):
        raise ApiError(401, "unauthorized", "Send your API key as 'Authorization: Bearer <key>'.")
    return principal
