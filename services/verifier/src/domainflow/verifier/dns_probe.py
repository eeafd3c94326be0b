"""The four DNS checks of one domain: look every record up at once, then judge (checks.py).

When the ownership TXT is missing, a second round asks where a DNS provider that appends the
zone would have put it: `<name>.<domain>` (seed 001's `_sendmux.{your-domain}.{your-domain}`)
and, when the domain is a subdomain, `<name>.<registrable domain>` (e.g.
`_sendmux.mail.acme.com.acme.com`, the zone being acme.com). That costs one or two queries, and
only for domains that fail anyway.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Protocol

from publicsuffixlist import PublicSuffixList

from domainflow.contracts.events import DnsRecords, NamedRecord, RecordCheck
from domainflow.verifier.checks import (
    LookupResult,
    NoData,
    NxDomain,
    check_dmarc,
    check_mx,
    check_spf,
    check_verification,
    doubled_zone_names,
    spf_lookups_needed,
)
from domainflow.verifier.spf import LOOKUP_LIMIT, Query


class Resolver(Protocol):
    """What the probe needs of a resolver; `DohResolver` is one."""

    async def lookup(self, name: str, rdtype: str) -> LookupResult: ...


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # reads the bundled list once (~60 ms)


def zones_of(domain: str) -> list[str]:
    """The zones a provider might append: the domain itself, then its registrable domain."""
    zones = [domain.rstrip(".")]
    registrable = _public_suffixes().privatesuffix(domain.rstrip(".").lower())
    if registrable and registrable != zones[0].lower():
        zones.append(registrable)
    return zones


async def probe_dns(resolver: Resolver, records: DnsRecords) -> list[RecordCheck]:
    """MX, ownership TXT, SPF and DMARC checks of `records`, in that order.

    The domain is the SPF record's name (`DnsRecords` carries no domain of its own); the MX
    lookup goes to the first MX record's name (all of them share it).
    """
    mx, ownership, spf, dmarc = await asyncio.gather(
        resolver.lookup(records.mx[0].name, "MX"),
        resolver.lookup(records.verification.name, "TXT"),
        resolver.lookup(records.spf.name, "TXT"),
        resolver.lookup(records.dmarc.name, "TXT"),
    )
    elsewhere: dict[str, LookupResult] = {}
    if isinstance(ownership, NxDomain | NoData):
        names = doubled_zone_names(records.verification.name, zones_of(records.spf.name))
        answers = await asyncio.gather(*(resolver.lookup(name, "TXT") for name in names))
        elsewhere = dict(zip(names, answers, strict=True))
    spf_answers = await spf_lookups(resolver, records.spf, spf)
    return [
        check_mx(records.mx, mx),
        check_verification(records.verification, ownership, elsewhere),
        check_spf(records.spf, spf, spf_answers),
        check_dmarc(records.dmarc, dmarc),
    ]


async def spf_lookups(
    resolver: Resolver, expected: NamedRecord, result: LookupResult
) -> dict[Query, LookupResult]:
    """Every answer a receiver's evaluation of the SPF record needs, asked a level at a time.

    A record that reaches the required includes directly (the common case) needs none.
    """
    answers: dict[Query, LookupResult] = {}
    # Each round adds at least one answer and the walk stops by the 11th lookup or 3rd void
    # one, so the rounds are few; the bound only guards against a bug looping forever.
    for _ in range(2 * LOOKUP_LIMIT):
        needed = sorted(spf_lookups_needed(expected, result, answers))
        if not needed:
            break
        found = await asyncio.gather(*(resolver.lookup(name, kind) for name, kind in needed))
        answers.update(zip(needed, found, strict=True))
    return answers


def dns_check(resolver: Resolver) -> Callable[[DnsRecords], Awaitable[list[RecordCheck]]]:
    """`probe_dns` bound to one resolver: the `DnsCheck` that `DomainProbe` takes."""
    return functools.partial(probe_dns, resolver)
