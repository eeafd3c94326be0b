"""The limit the api's read path is held to: a bare Litestar app doing the same single-row read.

No key check, no envelope, no record derivation: one asyncpg query on a pool of the same
size, the row returned as JSON. `benchmarks/read_path.py` serves it with the same uvicorn
settings as the api and loads both with the same wrk script in one run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from asyncpg import Connection, Record
from litestar import Litestar, Request, get
from litestar.exceptions import NotFoundException

from domainflow.kit.database import PooledConnection


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    # BARE_POOL=kit: the pool the services use (no reset query on release, kit/database.py),
    # so the ratio against it shows what the api's own code costs beyond the pool's setting.
    kit = os.environ.get("BARE_POOL") == "kit"
    connection_class: type[Connection[Record]] = PooledConnection if kit else Connection
    app.state.pool = await asyncpg.create_pool(
        os.environ["BARE_DATABASE_URL"], min_size=1, max_size=10, connection_class=connection_class
    )
    try:
        yield
    finally:
        await app.state.pool.close()


@get("/api/v1/domains/{public_id:str}")
async def read_domain(request: Request[Any, Any, Any], public_id: str) -> dict[str, Any]:
    row = await request.app.state.pool.fetchrow(
        "SELECT public_id, domain, status, region, created_at FROM domains WHERE public_id = $1",
        public_id,
    )
    if row is None:
        raise NotFoundException()
    return dict(row)


app = Litestar(route_handlers=[read_domain], lifespan=[lifespan], debug=False)
