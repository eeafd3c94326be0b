"""The mail-server adapter against the local PostgreSQL, judged by Postfix's own `postmap -q`."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from domainflow.provisioner.adapters.mailserver import SCHEMA, MailServer, ensure_schema
from domainflow.sandbox.postfix import PostmapError, postmap_query, render_virtual_domains_map
from tests.plugins.mailserver import PostmapQuery

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def new_domain() -> str:
    return f"mail.acme-{uuid.uuid4().hex[:10]}.com"


async def test_postfix_sees_an_added_domain_and_stops_seeing_a_removed_one(
    mail_server: MailServer, postmap_query: PostmapQuery
) -> None:
    domain = new_domain()
    assert await postmap_query(domain) is None

    await mail_server.add_domain(domain)
    assert await postmap_query(domain) == domain
    assert await mail_server.has_domain(domain)

    await mail_server.remove_domain(domain)
    assert await postmap_query(domain) is None
    assert not await mail_server.has_domain(domain)


async def test_adding_and_removing_twice_changes_nothing_more(
    mail_server: MailServer,
    mailserver_pool: asyncpg.Pool[asyncpg.Record],
    postmap_query: PostmapQuery,
) -> None:
    domain = new_domain()
    await mail_server.add_domain(domain)
    await mail_server.add_domain(domain)
    rows = await mailserver_pool.fetchval(
        "SELECT count(*) FROM virtual_domains WHERE name = $1", domain
    )
    assert rows == 1
    assert await postmap_query(domain) == domain

    await mail_server.remove_domain(domain)
    await mail_server.remove_domain(domain)  # already gone: still fine
    assert await postmap_query(domain) is None


async def test_names_are_stored_as_postfix_looks_them_up(
    mail_server: MailServer, postmap_query: PostmapQuery
) -> None:
    domain = new_domain()
    await mail_server.add_domain(f"{domain.upper()}.")
    assert await mail_server.has_domain(domain)
    assert await postmap_query(domain) == domain
    await mail_server.remove_domain(domain.upper())
    assert await postmap_query(domain) is None


async def test_one_domain_does_not_stand_for_another(
    mail_server: MailServer, postmap_query: PostmapQuery
) -> None:
    domain = new_domain()
    await mail_server.add_domain(domain)
    try:
        assert await postmap_query(f"other.{domain}") is None
        assert await postmap_query(domain.removeprefix("mail.")) is None
        # Postfix quotes the key: a quote in it cannot widen the query.
        assert await postmap_query("x' OR '1'='1") is None
    finally:
        await mail_server.remove_domain(domain)


async def test_ensure_schema_is_safe_to_repeat(
    mailserver_pool: asyncpg.Pool[asyncpg.Record], mail_server: MailServer
) -> None:
    domain = new_domain()
    await mail_server.add_domain(domain)
    await ensure_schema(mailserver_pool)
    assert await mail_server.has_domain(domain)
    await mail_server.remove_domain(domain)


def test_the_shipped_schema_is_the_one_applied() -> None:
    assert (ROOT / "deploy/mailserver/schema.sql").read_text() == SCHEMA


def test_postmap_failing_is_not_taken_for_not_found(tmp_path: Path) -> None:
    nowhere = tmp_path / "virtual_domains.cf"
    # Port 9 (discard) on loopback: nothing listens, the map cannot be read.
    nowhere.write_text(render_virtual_domains_map("postgresql://postgres@127.0.0.1:9/mailserver"))
    with pytest.raises(PostmapError):
        postmap_query("mail.acme.com", nowhere)


def test_the_map_carries_the_database_url() -> None:
    text = render_virtual_domains_map(
        "postgresql://mail%40ops:s3cr%23t@db.internal:6432/mailserver"
    )
    assert "hosts = inet:db.internal:6432\n" in text
    assert "user = mail@ops\n" in text
    assert "password = s3cr#t\n" in text
    assert "dbname = mailserver\n" in text
    assert "query = SELECT name FROM virtual_domains WHERE name = '%s'\n" in text
