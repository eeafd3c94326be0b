"""The registration and delegation watch, run by the re-verification cycle a batch at a time.

Each zone (a domain's registrable domain) is looked at once per `interval` at most: its NS set
through the DoH resolver and, when an RDAP service is configured, its registration expiry.
What changed since the last look, and an expiry closer than `notice` (30 days by default),
become `DnsWarning`s on the domain's `VerificationCompleted`. A failing watch never fails
the cycle: it logs, and the zone is looked at again next time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from domainflow.contracts import DnsWarning
from domainflow.kit.database import Database
from domainflow.kit.logging import get_logger
from domainflow.verifier.adapters import registrations
from domainflow.verifier.dns_probe import Resolver, zones_of
from domainflow.verifier.lookups import Found
from domainflow.verifier.registration import (
    EXPIRY_NOTICE,
    Registration,
    nameserver_set,
    watch_warnings,
)

log = get_logger(__name__)


class Expiries(Protocol):
    async def expiry(self, zone: str) -> datetime | None: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RegistrationWatch:
    def __init__(
        self,
        db: Database,
        resolver: Resolver,
        rdap: Expiries | None,
        *,
        interval: timedelta,
        notice: timedelta = EXPIRY_NOTICE,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._db = db
        self._resolver = resolver
        self._rdap = rdap
        self._interval = interval
        self._notice = notice
        self._clock = clock

    async def observe(self, domains: Sequence[str]) -> dict[str, list[DnsWarning]]:
        """Warnings per domain of the batch (none for most); {} when the watch failed."""
        try:
            return await self._observe(domains)
        except Exception:  # the database or resolver blinked: next time
            log.exception("registration.watch_failed", count=len(domains))
            return {}

    async def _observe(self, domains: Sequence[str]) -> dict[str, list[DnsWarning]]:
        zone_of = {domain: zones_of(domain)[-1].lower() for domain in domains}
        zones = sorted(set(zone_of.values()))
        known = await registrations.load(self._db, zones)
        now = self._clock()
        due = [z for z in zones if z not in known or now - known[z][1] >= self._interval]
        looked = await asyncio.gather(*(self._look(zone, known.get(zone)) for zone in due))
        await registrations.save(self._db, looked, now)
        fresh = {seen.zone: seen for seen in looked}
        by_zone: dict[str, list[DnsWarning]] = {}
        for zone in zones:
            before = known[zone][0] if zone in known else None
            if zone in fresh:
                by_zone[zone] = watch_warnings(before, fresh[zone], now, notice=self._notice)
            elif before is not None:  # not due: only what still holds (an expiry)
                by_zone[zone] = watch_warnings(None, before, now, notice=self._notice)
        return {domain: by_zone.get(zone, []) for domain, zone in zone_of.items()}

    async def _look(self, zone: str, known: tuple[Registration, datetime] | None) -> Registration:
        answer = await self._resolver.lookup(zone, "NS")
        nameservers = nameserver_set(answer.records) if isinstance(answer, Found) else ()
        expires = await self._rdap.expiry(zone) if self._rdap is not None else None
        if expires is None and known is not None:
            expires = known[0].expires_at  # RDAP silent this time: keep what it said before
        return Registration(zone, nameservers, expires)
