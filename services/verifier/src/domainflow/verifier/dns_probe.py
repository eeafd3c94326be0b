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
from dataclasses import dataclass
from typing import Protocol

from publicsuffixlist import PublicSuffixList

from domainflow.contracts.events import (
    CheckOutcome,
    DkimStatus,
    DnsRecords,
    DnsWarning,
    NamedRecord,
    RecordCheck,
    RecordKind,
)
from domainflow.verifier.adapters.authority import Authorities, Zone
from domainflow.verifier.checks import (
    Found,
    LookupResult,
    NoData,
    NxDomain,
    Reason,
    Unavailable,
    authority_unreachable,
    check_dkim_dns,
    check_dmarc,
    check_mx,
    check_spf,
    check_verification,
    cname_conflict,
    delegated_zone,
    doubled_zone_names,
    hostname,
    negative_caching_time,
    preflight_warnings,
    propagating,
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


@dataclass(frozen=True)
class AuthorityOptions:
    """Whether and how to ask zones' own nameservers about failing records."""

    port: int = 53
    timeout: float = 2.0


#: A judge of one record kind: an answer in, that record's check out.
Judge = Callable[[LookupResult], Awaitable[RecordCheck]]


async def probe_dns(
    resolver: Resolver, records: DnsRecords, authority: AuthorityOptions | None = None
) -> list[RecordCheck]:
    """MX, ownership TXT, SPF and DMARC checks of `records`, in that order.

    The domain is the SPF record's name (`DnsRecords` carries no domain of its own); the MX
    lookup goes to the first MX record's name (all of them share it). A failing record at a
    name that is a CNAME becomes `cname_conflict`; with `authority`, every other failing
    record is asked of the zone's own nameservers too (`refine_by_authority`).
    """
    receives = bool(records.mx)  # a send-only domain has no MX to check
    mx_name = records.mx[0].name if receives else records.spf.name
    mx, ownership, spf, dmarc = await asyncio.gather(
        resolver.lookup(mx_name, "MX"),
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

    async def judge_spf(answer: LookupResult) -> RecordCheck:
        return check_spf(records.spf, answer, await spf_lookups(resolver, records.spf, answer))

    judged: list[tuple[RecordCheck, tuple[str, str, LookupResult, Judge]]] = [
        (
            cname_conflict(
                check_verification(records.verification, ownership, elsewhere), ownership
            ),
            (
                records.verification.name,
                "TXT",
                ownership,
                _judge(lambda a: check_verification(records.verification, a)),
            ),
        ),
        (
            cname_conflict(check_spf(records.spf, spf, spf_answers), spf),
            (records.spf.name, "TXT", spf, judge_spf),
        ),
        (
            cname_conflict(check_dmarc(records.dmarc, dmarc), dmarc),
            (records.dmarc.name, "TXT", dmarc, _judge(lambda a: check_dmarc(records.dmarc, a))),
        ),
    ]
    if receives:
        judged.insert(
            0,
            (
                cname_conflict(check_mx(records.mx, mx), mx),
                (mx_name, "MX", mx, _judge(lambda a: check_mx(records.mx, a))),
            ),
        )
    checks = [check for check, _ in judged]
    if authority is not None and any(_worth_asking(check) for check in checks):
        checks = await _refined(resolver, records, authority, judged)
    return checks + await probe_mail_from(resolver, records)


async def _refined(
    resolver: Resolver,
    records: DnsRecords,
    authority: AuthorityOptions,
    judged: list[tuple[RecordCheck, tuple[str, str, LookupResult, Judge]]],
) -> list[RecordCheck]:
    async def pure(check: RecordCheck) -> RecordCheck:
        return check

    registrable = zones_of(records.spf.name)[-1]
    authorities = Authorities(resolver, registrable, port=authority.port, timeout=authority.timeout)
    refined = await asyncio.gather(
        *(
            refine_by_authority(authorities, check, name, kind, cached, judge, registrable)
            if _worth_asking(check)
            else pure(check)
            for check, (name, kind, cached, judge) in judged
        )
    )
    return list(refined)


async def probe_claim(
    resolver: Resolver, claimant: NamedRecord, holder: NamedRecord
) -> tuple[RecordCheck, RecordCheck]:
    """Both teams' ownership TXT at the name they both want, from one lookup, each judged as
    a verification judges it (the claimant's failure names the record it expects)."""
    answer = await resolver.lookup(claimant.name, "TXT")
    return check_verification(claimant, answer), check_verification(holder, answer)


async def probe_mail_from(resolver: Resolver, records: DnsRecords) -> list[RecordCheck]:
    """The custom MAIL FROM subdomain's MX (SES's feedback endpoint) and SPF: reported beside
    the required checks (SES falls back to its own MAIL FROM while they are missing)."""
    mail_from = records.mail_from
    if mail_from is None:
        return []
    mx, spf = await asyncio.gather(
        resolver.lookup(mail_from.mx.name, "MX"), resolver.lookup(mail_from.spf.name, "TXT")
    )
    spf_answers = await spf_lookups(resolver, mail_from.spf, spf)
    return [
        check_mx([mail_from.mx], mx).model_copy(update={"record": RecordKind.MAIL_FROM_MX}),
        check_spf(mail_from.spf, spf, spf_answers).model_copy(
            update={"record": RecordKind.MAIL_FROM_SPF}
        ),
    ]


def _judge(rule: Callable[[LookupResult], RecordCheck]) -> Judge:
    async def judge(answer: LookupResult) -> RecordCheck:
        return rule(answer)

    return judge


#: Failures the zone's own answer cannot change: the record is where DNS shows it.
_SETTLED = {Reason.ZONE_APPENDED_TWICE.value, Reason.CNAME_CONFLICT.value}


def _worth_asking(check: RecordCheck) -> bool:
    return check.outcome == CheckOutcome.FAIL and check.reason not in _SETTLED


async def refine_by_authority(
    authorities: Authorities,
    check: RecordCheck,
    name: str,
    kind: str,
    cached: LookupResult,
    judge: Judge,
    registrable: str,
) -> RecordCheck:
    """A failing check seen from the zone's own nameservers too: propagating, delegated, or
    the same failure (with a note when the nameservers could not be asked)."""
    answer, zone = await authorities.lookup(name, kind)
    if isinstance(zone, Zone) and hostname(zone.apex) != hostname(registrable):
        hosts = [host for host, _ in zone.servers]
        check = delegated_zone(check, zone.apex, registrable, hosts)
    if isinstance(answer, Unavailable):
        return authority_unreachable(check, answer.reason)
    assert isinstance(zone, Zone)  # an answer came from one of its servers
    server = zone.servers[0][0]
    authoritative = await judge(answer)
    ttl_bound: int | None = None
    if authoritative.outcome == CheckOutcome.PASS and not isinstance(cached, Found):
        soa, _ = await authorities.lookup(zone.apex, "SOA")
        ttl_bound = negative_caching_time(soa)
    return propagating(check, authoritative, cached, server, ttl_bound)


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


async def diagnose_dkim(resolver: Resolver, records: DnsRecords, status: DkimStatus) -> RecordCheck:
    """The three DKIM CNAMEs as DNS shows them, to say why SES does not say success.

    Three CNAME queries; for a name without one, its A record (a proxied CNAME) and where a
    provider that appends the zone would have put it.
    """
    names = [r.name for r in records.dkim]
    answers = await asyncio.gather(*(resolver.lookup(name, "CNAME") for name in names))
    cnames = dict(zip(names, answers, strict=True))
    absent = [n for n, a in cnames.items() if not isinstance(a, Found | Unavailable)]
    zones = zones_of(records.spf.name)
    doubled = {name: doubled_zone_names(name, zones) for name in absent}
    asked = [(name, "A") for name in absent] + [
        (where, "CNAME") for name in absent for where in doubled[name]
    ]
    found = dict(
        zip(
            asked,
            await asyncio.gather(*(resolver.lookup(n, kind) for n, kind in asked)),
            strict=True,
        )
    )
    addresses = {name: found[(name, "A")] for name in absent}
    elsewhere = {name: {w: found[(w, "CNAME")] for w in doubled[name]} for name in absent}
    return check_dkim_dns(records.dkim, status, cnames, addresses, elsewhere)


async def preflight(resolver: Resolver, records: DnsRecords) -> list[DnsWarning]:
    """What is already published that will conflict with `records` (`preflight_warnings`)."""
    zone = zones_of(records.spf.name)[-1]
    # A send-only domain has no MX of ours; its own name's MX still shows a CNAME there.
    mx_name = records.mx[0].name if records.mx else records.spf.name
    mx, spf, dmarc, ds, dnskey = await asyncio.gather(
        resolver.lookup(mx_name, "MX"),
        resolver.lookup(records.spf.name, "TXT"),
        resolver.lookup(records.dmarc.name, "TXT"),
        resolver.lookup(zone, "DS"),
        resolver.lookup(zone, "DNSKEY"),
    )
    return preflight_warnings(records, mx, spf, dmarc, ds, dnskey, zone)


def dns_check(
    resolver: Resolver, authority: AuthorityOptions | None = None
) -> Callable[[DnsRecords], Awaitable[list[RecordCheck]]]:
    """`probe_dns` bound to one resolver: the `DnsCheck` that `DomainProbe` takes."""
    return functools.partial(probe_dns, resolver, authority=authority)
