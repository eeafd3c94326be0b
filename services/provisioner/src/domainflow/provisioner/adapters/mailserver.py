"""The mail server: the Postfix/Dovecot virtual-domain table in the mail platform's database.

The mail platform owns the table (`deploy/mailserver/schema.sql`, the same DDL as `SCHEMA`
here) and Postfix reads it through a pgsql map (`deploy/postfix/virtual_domains.cf.in`).
A domain's row is added inactive when it is provisioned (the name is held, Postfix does not
match it) and activated once its ownership is proven; adding, activating and removing are
idempotent, so a saga step may repeat any of them safely.
"""

from __future__ import annotations

import asyncpg

#: The DDL of `deploy/mailserver/schema.sql`, applied by `ensure_schema` (tests keep them equal).
SCHEMA = """\
-- The mail platform's virtual-domain table: Postfix accepts mail for a domain, and Dovecot
-- hosts its mailboxes, while a row names it and is active. domainflow's provisioner only
-- inserts, activates and deletes rows; names are lower-case ASCII (IDNA A-labels) without a
-- trailing dot, as Postfix looks them up. Safe to apply again: it changes nothing that exists.
CREATE TABLE IF NOT EXISTS virtual_domains (
    name       text PRIMARY KEY CHECK (name = lower(name) AND name <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);
-- A row is inactive (Postfix's map query skips it) until its owner has shown the domain is
-- theirs: the ownership TXT seen by a verification. Rows written before the column existed
-- stay active, as they were.
ALTER TABLE virtual_domains ADD COLUMN IF NOT EXISTS active boolean NOT NULL DEFAULT true;
"""


def _name(domain: str) -> str:
    return domain.strip().rstrip(".").lower()


async def ensure_schema(pool: asyncpg.Pool[asyncpg.Record]) -> None:
    """Create the virtual-domain table if it is missing (the local stack and tests)."""
    # Two replicas starting at once would race on CREATE TABLE IF NOT EXISTS.
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('virtual_domains'))")
        await conn.execute(SCHEMA)


class MailServer:
    """The mail platform's list of virtual domains."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        self._pool = pool

    async def add_domain(self, domain: str, *, live: bool) -> None:
        """Hold `domain` on the mail server; `live`: have Postfix accept mail for it.

        Not live, a row that exists already stays as it is (never switched off again); live,
        the row is added or activated.
        """
        if live:
            sql = (
                "INSERT INTO virtual_domains (name, active) VALUES ($1, true)"
                " ON CONFLICT (name) DO UPDATE SET active = true"
            )
        else:
            sql = (
                "INSERT INTO virtual_domains (name, active) VALUES ($1, false)"
                " ON CONFLICT (name) DO NOTHING"
            )
        await self._pool.execute(sql, _name(domain))

    async def remove_domain(self, domain: str) -> None:
        """Stop accepting mail for `domain`; a domain already gone is fine."""
        await self._pool.execute("DELETE FROM virtual_domains WHERE name = $1", _name(domain))

    async def has_domain(self, domain: str) -> bool:
        """A row names `domain`, live or not."""
        found = await self._pool.fetchval(
            "SELECT 1 FROM virtual_domains WHERE name = $1", _name(domain)
        )
        return found is not None

    async def is_live(self, domain: str) -> bool:
        """Postfix accepts mail for `domain` (its row is active)."""
        found = await self._pool.fetchval(
            "SELECT active FROM virtual_domains WHERE name = $1", _name(domain)
        )
        return found is True
