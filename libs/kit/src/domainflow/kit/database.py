"""PostgreSQL for a service: create its database, migrate it, and hand out transactions.

Each service owns one database; nothing else reads it. Migrations are plain SQL files
(`NNN_name.sql`) applied once, in order, under an advisory lock so replicas starting
together do not race.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.resources.abc import Traversable
from typing import TypeAlias
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from domainflow.kit.logging import get_logger

#: A connection as handlers see it: a pooled one or a plain one (tests, the CLI).
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

log = get_logger(__name__)

_MIGRATION_LOCK = 0x646F6D61696E  # "domain": one advisory-lock key per database is enough


def _maintenance_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        raise ValueError(f"database URL {url!r} names no database")
    return urlunsplit(parts._replace(path="/postgres")), name


async def ensure_database(url: str) -> None:
    """Create the database named by `url` if it does not exist yet."""
    maintenance, name = _maintenance_url(url)
    conn = await asyncpg.connect(maintenance)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
                log.info("database.created", database=name)
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                pass  # another replica won the race (PostgreSQL reports it either way)
    finally:
        await conn.close()


async def drop_database(url: str) -> None:
    """Drop the database named by `url` (tests and `make clean` only)."""
    maintenance, name = _maintenance_url(url)
    conn = await asyncpg.connect(maintenance)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def migration_files(*folders: Traversable) -> list[tuple[str, str]]:
    """(version, sql) for every `*.sql` in the folders, in folder then name order."""
    found: list[tuple[str, str]] = []
    for folder in folders:
        files = sorted(
            (f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name
        )
        found.extend((f.name, f.read_text(encoding="utf-8")) for f in files)
    return found


async def migrate(conn: Connection, migrations: Sequence[tuple[str, str]]) -> list[str]:
    """Apply the migrations not applied yet; returns the versions applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in migrations:
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied_now.append(version)
            log.info("database.migrated", version=version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class PooledConnection(asyncpg.Connection):
    """A pool's connection, handed back without asyncpg's reset query.

    asyncpg runs `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` each time a
    connection returns to the pool: one more round trip per use, as much as a short read
    itself. Nothing here leaves session state on a pooled connection: LISTEN has its own
    connection (kit/listener.py), the migration lock is released in `finally`, no code runs
    SET without LOCAL or DECLAREs a cursor outside a transaction. An open transaction is
    still rolled back on release (asyncpg does that apart from the reset query).
    """

    def get_reset_query(self) -> str:
        return ""


class Database:
    """A connection pool with the conventions every service uses (jsonb as Python objects)."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], url: str) -> None:
        self.pool = pool
        self.url = url  # for a connection outside the pool (LISTEN: kit/listener.py)
        # Turns at the pool's connections, first come first served (see `connection`).
        self._turns = asyncio.Semaphore(pool.get_max_size())

    @classmethod
    async def connect(cls, url: str, *, size: int = 10) -> Database:
        pool = await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=size,
            init=_init_connection,
            command_timeout=60,
            connection_class=PooledConnection,
        )
        return cls(pool, url)

    @classmethod
    async def prepare(
        cls, url: str, migrations: Sequence[tuple[str, str]], *, size: int = 10
    ) -> Database:
        """Create the database if needed, migrate it, and open a pool."""
        await ensure_database(url)
        db = await cls.connect(url, size=size)
        try:
            async with db.pool.acquire() as conn:
                await migrate(conn, migrations)
        except BaseException:
            await db.close()  # a caller retrying must not leak a pool per try
            raise
        return db

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection of the pool, handed out in the order callers asked for one.

        asyncpg's pool is not fair: a connection handed back goes to whoever asks next if
        that caller comes before the longest waiter has woken, and the waiter queues again at
        the back. Under a steady load larger than the pool, a few requests lost that race
        again and again: the read path's p99 was 15 times its median. asyncio's semaphore
        lets no newcomer past a waiter.
        """
        async with self._turns, self.pool.acquire() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def ping(self) -> bool:
        try:
            async with self.pool.acquire(timeout=2) as conn:
                return bool(await conn.fetchval("SELECT true"))
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False

    async def close(self) -> None:
        await self.pool.close()
