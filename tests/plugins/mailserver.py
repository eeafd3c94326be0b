"""Pytest fixtures: mailserver — the mail platform's database, read back by Postfix's own postmap.

`mailserver_database_url` is a database of this session's own on the local PostgreSQL
(`DOMAINFLOW_TEST_POSTGRES_URL` overrides the server), with the virtual-domain table applied,
dropped at the end. `postfix_map` is a pgsql map file rendered for it from the deploy template;
`postmap_query(domain)` asks `/usr/sbin/postmap -q` through that map: the value Postfix sees,
or None when the domain is not there.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from domainflow.kit.database import drop_database, ensure_database
from domainflow.provisioner.adapters.mailserver import MailServer, ensure_schema
from domainflow.sandbox.postfix import postmap_query as run_postmap
from domainflow.sandbox.postfix import write_virtual_domains_map
from tests.plugins import infra

POSTGRES = f"{infra.POSTGRES}/postgres"  # the same server as every other test

PostmapQuery = Callable[[str], Awaitable[str | None]]


def _database(name: str) -> str:
    return urlunsplit(urlsplit(POSTGRES)._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
async def mailserver_database_url() -> AsyncIterator[str]:
    """A fresh mail-platform database with the `virtual_domains` table."""
    url = _database(f"dftest_mailserver_{uuid.uuid4().hex[:6]}")
    await ensure_database(url)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        await ensure_schema(pool)
    finally:
        await pool.close()
    try:
        yield url
    finally:
        await drop_database(url)


@pytest.fixture(scope="session")
async def mailserver_pool(
    mailserver_database_url: str,
) -> AsyncIterator[asyncpg.Pool[asyncpg.Record]]:
    pool = await asyncpg.create_pool(mailserver_database_url, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def mail_server(mailserver_pool: asyncpg.Pool[asyncpg.Record]) -> MailServer:
    return MailServer(mailserver_pool)


@pytest.fixture(scope="session")
def postfix_map(mailserver_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pgsql map file Postfix would use for the session's mail-platform database."""
    folder = tmp_path_factory.mktemp("postfix")
    return write_virtual_domains_map(mailserver_database_url, folder / "virtual_domains.cf")


@pytest.fixture(scope="session")
def postmap_query(postfix_map: Path) -> PostmapQuery:
    """`await postmap_query(domain)`: what `postmap -q domain pgsql:<map>` prints, or None."""

    async def query(domain: str) -> str | None:
        return await asyncio.to_thread(run_postmap, domain, postfix_map)

    return query
