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

    await mail_server.add_domain(domain, live=True)
    assert await postmap_query(domain) == domain
    assert await mail_server.has_domain(domain)

    await mail_server.remove_domain(domain)
    assert await postmap_query(domain) is None
    assert not await mail_server.has_domain(domain)


async def test_a_held_domain_is_not_accepted_until_it_goes_live(
    mail_server: MailServer, postmap_query: PostmapQuery
) -> None:
    domain = new_domain()
    await mail_server.add_domain(domain, live=False)
    assert await mail_server.has_domain(domain)
    assert not await mail_server.is_live(domain)
    assert await postmap_query(domain) is None  # Postfix does not accept mail for it

    await mail_server.add_domain(domain, live=True)
    assert await mail_server.is_live(domain)
    assert await postmap_query(domain) == domain

    # Holding it again (a provisioning step redone) never switches a live domain off.
    await mail_server.add_domain(domain, live=False)
    assert await postmap_query(domain) == domain
    await mail_server.remove_domain(domain)
    assert await postmap_query(domain) is None


async def test_going_live_twice_and_going_live_without_being_held_both_work(
    mail_server: MailServer,
    mailserver_pool: asyncpg.Pool[asyncpg.Record],
    postmap_query: PostmapQuery,
) -> None:
    domain = new_domain()
    await mail_server.add_domain(domain, live=True)  # no held row first: added live
    await mail_server.add_domain(domain, live=True)
    rows = await mailserver_pool.fetchval(
        "SELECT count(*) FROM virtual_domains WHERE name = $1", domain
    )
    assert rows == 1
    assert await postmap_query(domain) == domain
    await mail_server.remove_domain(domain)


async def test_rows_from_before_the_active_column_stay_accepted(
    mailserver_pool: asyncpg.Pool[asyncpg.Record],
) -> None:
    # A mail platform's table as the earlier schema made it, in a schema of the test's own:
    # applying today's schema over it keeps its domains live.
    schema = f"old_{uuid.uuid4().hex[:8]}"
    async with mailserver_pool.acquire() as conn:
        try:
            await conn.execute(f"CREATE SCHEMA {schema}")
            await conn.execute(f"SET search_path TO {schema}")
            await conn.execute(
                "CREATE TABLE virtual_domains (name text PRIMARY KEY, created_at timestamptz)"
            )
            await conn.execute("INSERT INTO virtual_domains (name) VALUES ('mail.old.example')")
            await conn.execute(SCHEMA)
            active = await conn.fetchval("SELECT active FROM virtual_domains")
        finally:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
            await conn.execute("RESET search_path")
    assert active is True


async def test_adding_and_removing_twice_changes_nothing_more(
    mail_server: MailServer,
    mailserver_pool: asyncpg.Pool[asyncpg.Record],
    postmap_query: PostmapQuery,
) -> None:
    domain = new_domain()
    await mail_server.add_domain(domain, live=True)
    await mail_server.add_domain(domain, live=True)
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
    await mail_server.add_domain(f"{domain.upper()}.", live=True)
    assert await mail_server.has_domain(domain)
    assert await postmap_query(domain) == domain
    await mail_server.remove_domain(domain.upper())
    assert await postmap_query(domain) is None


async def test_one_domain_does_not_stand_for_another(
    mail_server: MailServer, postmap_query: PostmapQuery
) -> None:
    domain = new_domain()
    await mail_server.add_domain(domain, live=True)
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
    await mail_server.add_domain(domain, live=True)
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
    assert "query = SELECT name FROM virtual_domains WHERE name = '%s' AND active\n" in text
