"""Diagnoses beyond one cached answer, against the DoH sandbox and its authoritative server.

SPF is evaluated as a receiver would over the same DoH resolver; failing records are asked of
the zone's own nameserver (the sandbox's second Unbound) so caches and authority can disagree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from domainflow.contracts.events import (
    CheckOutcome,
    DkimStatus,
    DnsRecords,
    DnsWarning,
    RecordCheck,
    RecordKind,
)
from domainflow.sandbox.dns import AUTHORITY, DnsSandbox
from domainflow.verifier.adapters.doh import DohResolver
from domainflow.verifier.dns_probe import AuthorityOptions, diagnose_dkim, preflight, probe_dns
from tests.plugins.dns import SandboxZones, make_records

pytestmark = pytest.mark.integration

OURS = "include:amazonses.com include:sendmux.ai"


@pytest.fixture
async def doh(dns_sandbox: DnsSandbox) -> AsyncIterator[DohResolver]:
    async with DohResolver(
        dns_sandbox.doh_url, ca_file=dns_sandbox.ca_file, timeout=2.0, backoff=0.05
    ) as resolver:
        yield resolver


@pytest.fixture
def authority(dns_sandbox: DnsSandbox) -> AuthorityOptions:
    return AuthorityOptions(port=dns_sandbox.ports.authority, timeout=1.0)


async def check_of(
    doh: DohResolver,
    records: DnsRecords,
    kind: RecordKind,
    authority: AuthorityOptions | None = None,
) -> RecordCheck:
    checks = await probe_dns(doh, records, authority)
    return next(check for check in checks if check.record == kind)


def placed(zones: SandboxZones, spf: str) -> tuple[str, DnsRecords]:
    domain = zones.new_domain()
    records = make_records(domain)
    zones.place(records)
    zones.set_records(domain, "TXT", [spf])
    return domain, records


# -- SPF as receivers evaluate it ---------------------------------------------------------


async def test_a_nested_include_passes(dns_zones: SandboxZones, doh: DohResolver) -> None:
    domain, records = placed(dns_zones, "v=spf1 -all")
    zone = domain.partition(".")[2]
    dns_zones.set_records(domain, "TXT", [f"v=spf1 include:_spf.{zone} -all"])
    dns_zones.set_records(f"_spf.{zone}", "TXT", [f"v=spf1 ip4:192.0.2.1 {OURS} -all"])
    check = await check_of(doh, records, RecordKind.SPF)
    assert check.outcome == CheckOutcome.PASS, check.message
    assert f"through include:_spf.{zone} → include:amazonses.com" in check.message
    assert check.details["lookups"] == 3


async def test_a_redirect_passes(dns_zones: SandboxZones, doh: DohResolver) -> None:
    domain, records = placed(dns_zones, "v=spf1 -all")
    zone = domain.partition(".")[2]
    dns_zones.set_records(domain, "TXT", [f"v=spf1 redirect=_spf.{zone}"])
    dns_zones.set_records(f"_spf.{zone}", "TXT", [f"v=spf1 {OURS} ~all"])
    check = await check_of(doh, records, RecordKind.SPF)
    assert check.outcome == CheckOutcome.PASS, check.message
    assert f"redirect=_spf.{zone}" in check.message


async def test_eleven_lookups_fail_and_name_each_cost(
    dns_zones: SandboxZones, doh: DohResolver
) -> None:
    domain, records = placed(dns_zones, "v=spf1 -all")
    zone = domain.partition(".")[2]
    vendors = [f"v{i}.{zone}" for i in range(3)]
    for vendor in vendors:  # each costs 1 + 2 nested a: lookups
        dns_zones.set_records(vendor, "TXT", [f"v=spf1 a:h1.{zone} a:h2.{zone} -all"])
    for host in ("h1", "h2"):
        dns_zones.set_records(f"{host}.{zone}", "A", ["192.0.2.1"])
    dns_zones.set_records(f"mx.{zone}", "MX", [f"10 h1.{zone}."])
    spf = f"v=spf1 {' '.join(f'include:{v}' for v in vendors)} mx:mx.{zone} {OURS} ~all"
    dns_zones.set_records(domain, "TXT", [spf])
    check = await check_of(doh, records, RecordKind.SPF)
    assert check.reason == "spf_too_many_lookups", check.message
    for vendor in vendors:
        assert f"include:{vendor} costs 3" in check.message
    assert f"mx:mx.{zone} costs 1" in check.message
    assert check.details["lookup_costs"] == {
        **{f"include:{v}": 3 for v in vendors},
        f"mx:mx.{zone}": 1,
        "include:amazonses.com": 1,
        "include:sendmux.ai": 1,
    }
    assert check.details["merged_record"] == (
        f"v=spf1 {OURS} {' '.join(f'include:{v}' for v in vendors)} mx:mx.{zone} ~all"
    )


async def test_the_void_lookup_limit(dns_zones: SandboxZones, doh: DohResolver) -> None:
    domain, records = placed(dns_zones, "v=spf1 -all")
    zone = domain.partition(".")[2]
    gone = " ".join(f"a:gone{i}.{zone}" for i in range(3))
    dns_zones.set_records(domain, "TXT", [f"v=spf1 {gone} {OURS} ~all"])
    check = await check_of(doh, records, RecordKind.SPF)
    assert check.reason == "spf_void_lookup_limit", check.message
    assert check.details["void_lookups"] == 3
    assert f"gone2.{zone}" in check.message


async def test_a_loop(dns_zones: SandboxZones, doh: DohResolver) -> None:
    domain, records = placed(dns_zones, "v=spf1 -all")
    zone = domain.partition(".")[2]
    dns_zones.set_records(f"a.{zone}", "TXT", [f"v=spf1 include:b.{zone} -all"])
    dns_zones.set_records(f"b.{zone}", "TXT", [f"v=spf1 include:a.{zone} -all"])
    dns_zones.set_records(domain, "TXT", [f"v=spf1 include:a.{zone} {OURS} ~all"])
    check = await check_of(doh, records, RecordKind.SPF)
    assert check.reason == "spf_loop", check.message
    assert f"include:a.{zone} → include:b.{zone} → include:a.{zone}" in check.message


async def test_an_spf_for_other_senders_gets_the_merged_record(
    dns_zones: SandboxZones, doh: DohResolver
) -> None:
    dns_zones.set_records("_spf.google.com", "TXT", ["v=spf1 ip4:74.125.0.0/16 ~all"])
    _, records = placed(dns_zones, "v=spf1 include:_spf.google.com -all")
    check = await check_of(doh, records, RecordKind.SPF)
    assert check.reason == "spf_include_missing"
    merged = f"v=spf1 {OURS} include:_spf.google.com -all"
    assert check.details["merged_record"] == merged
    assert merged in check.message


# -- the authoritative view ---------------------------------------------------------------


async def test_published_but_cached_is_propagating_with_the_ttl_left(
    dns_zones: SandboxZones, doh: DohResolver, authority: AuthorityOptions
) -> None:
    domain = dns_zones.new_domain()
    zone = domain.partition(".")[2]
    records = make_records(domain)
    dns_zones.delegate(zone, soa_minimum=60)
    dns_zones.place(records)
    dns_zones.place_at_authority(records)
    # The resolver still holds yesterday's DMARC for 300 s and knows no ownership TXT yet.
    dns_zones.set_records(f"_dmarc.{domain}", "TXT", ["v=DMARC1; p=none"], ttl=300)
    dns_zones.remove_name(records.verification.name)

    dmarc = await check_of(doh, records, RecordKind.DMARC, authority)
    assert dmarc.reason == "propagating", dmarc.message
    assert dmarc.details["ttl_left"] == 300
    assert "up to 300 s more" in dmarc.message
    ownership = await check_of(doh, records, RecordKind.VERIFICATION_TXT, authority)
    assert ownership.reason == "propagating", ownership.message
    assert ownership.details["ttl_left"] == 60  # the SOA's negative-caching time


async def test_missing_at_the_authority_too_stays_missing(
    dns_zones: SandboxZones, doh: DohResolver, authority: AuthorityOptions
) -> None:
    domain = dns_zones.new_domain()
    records = make_records(domain)
    dns_zones.delegate(domain.partition(".")[2])
    dns_zones.place(records)
    dns_zones.remove_name(records.dmarc.name)
    check = await check_of(doh, records, RecordKind.DMARC, authority)
    assert check.reason == "record_missing"
    assert "authority" not in check.details


async def test_unreachable_authority_says_so_and_keeps_the_resolver_view(
    dns_zones: SandboxZones,
    dns_sandbox: DnsSandbox,
    doh: DohResolver,
    authority: AuthorityOptions,
) -> None:
    domain = dns_zones.new_domain()
    records = make_records(domain)
    dns_zones.delegate(domain.partition(".")[2])
    dns_zones.place(records)
    dns_zones.remove_name(records.dmarc.name)
    dns_sandbox.stop_authority()
    check = await check_of(doh, records, RecordKind.DMARC, authority)
    assert check.reason == "record_missing"
    assert str(check.details["authority"]).startswith("unreachable:")
    assert "could not be asked" in check.message


async def test_a_cname_at_the_name_hides_the_txt(
    dns_zones: SandboxZones, doh: DohResolver, authority: AuthorityOptions
) -> None:
    domain = dns_zones.new_domain()
    records = make_records(domain)
    dns_zones.place(records)
    target = f"site.{domain.partition('.')[2]}"
    dns_zones.set_records(target, "TXT", ["v=spf1 -all"])
    dns_zones.set_records(records.dmarc.name, "TXT", [])
    dns_zones.set_records(records.dmarc.name, "CNAME", [f"{target}."])
    check = await check_of(doh, records, RecordKind.DMARC, authority)
    assert check.reason == "cname_conflict", check.message
    assert check.details["cname_target"] == target
    assert f"Remove the CNAME at {records.dmarc.name}" in check.message


async def test_a_delegated_subdomain_is_named(
    dns_zones: SandboxZones, doh: DohResolver, authority: AuthorityOptions
) -> None:
    domain = dns_zones.new_domain()
    records = make_records(domain)
    dns_zones.place(records)  # placed in the parent's zone (what the resolver shows)...
    dns_zones.remove_name(records.dmarc.name)
    dns_zones.delegate(domain)  # ...but mail.<zone> is its own zone, served elsewhere
    check = await check_of(doh, records, RecordKind.DMARC, authority)
    assert check.reason == "delegated_elsewhere", check.message
    assert check.details["zone"] == domain
    assert f"{domain} is delegated" in check.message


async def test_authority_records_are_not_seen_through_the_resolver(
    dns_zones: SandboxZones, dns_sandbox: DnsSandbox, doh: DohResolver
) -> None:
    domain = dns_zones.new_domain()
    dns_zones.set_records(domain, "TXT", ["only at the authority"], side=AUTHORITY)
    assert dns_sandbox.records(side=AUTHORITY)[f"{domain}."]["TXT"] == ['"only at the authority"']
    assert f"{domain}." not in dns_sandbox.records()


# -- DKIM as DNS shows it -----------------------------------------------------------------


async def dkim_check(doh: DohResolver, records: DnsRecords) -> RecordCheck:
    return await diagnose_dkim(doh, records, DkimStatus.PENDING)


async def test_dkim_in_place_waits_for_ses(dns_zones: SandboxZones, doh: DohResolver) -> None:
    records = make_records(dns_zones.new_domain())
    dns_zones.place(records)
    check = await dkim_check(doh, records)
    assert check.record == RecordKind.DKIM
    assert check.reason == "dkim_awaiting_ses", check.message
    assert check.outcome == CheckOutcome.PASS


async def test_dkim_cname_missing(dns_zones: SandboxZones, doh: DohResolver) -> None:
    records = make_records(dns_zones.new_domain())
    dns_zones.place(records)
    dns_zones.remove_name(records.dkim[1].name)
    check = await dkim_check(doh, records)
    assert check.reason == "dkim_cname_missing", check.message
    assert f"No CNAME at {records.dkim[1].name}" in check.message
    assert check.details["problems"] == ["dkim_cname_missing"]


async def test_dkim_cname_pointing_elsewhere(dns_zones: SandboxZones, doh: DohResolver) -> None:
    records = make_records(dns_zones.new_domain())
    dns_zones.place(records)
    dns_zones.set_records(records.dkim[0].name, "CNAME", [records.dkim[2].value + "."])
    check = await dkim_check(doh, records)
    assert check.reason == "dkim_cname_mismatch", check.message
    assert f"points to {records.dkim[2].value}, not {records.dkim[0].value}" in check.message


async def test_dkim_proxied(dns_zones: SandboxZones, doh: DohResolver) -> None:
    records = make_records(dns_zones.new_domain())
    dns_zones.place(records)
    dns_zones.set_records(records.dkim[2].name, "CNAME", [])
    dns_zones.set_records(records.dkim[2].name, "A", ["104.16.0.1"])
    check = await dkim_check(doh, records)
    assert check.reason == "dkim_proxied", check.message
    assert "DNS only" in check.message


async def test_dkim_zone_appended_twice(dns_zones: SandboxZones, doh: DohResolver) -> None:
    domain = dns_zones.new_domain()
    records = make_records(domain)
    dns_zones.place(records)
    doubled = f"{records.dkim[0].name}.{domain}"
    dns_zones.set_records(records.dkim[0].name, "CNAME", [])
    dns_zones.set_records(doubled, "CNAME", [records.dkim[0].value + "."])
    check = await dkim_check(doh, records)
    assert check.reason == "zone_appended_twice", check.message
    assert doubled in check.message


# -- pre-flight ---------------------------------------------------------------------------


async def warnings_of(doh: DohResolver, records: DnsRecords) -> dict[str, DnsWarning]:
    return {warning.code: warning for warning in await preflight(doh, records)}


async def test_nothing_published_warns_of_nothing(
    dns_zones: SandboxZones, doh: DohResolver
) -> None:
    assert await warnings_of(doh, make_records(dns_zones.new_domain())) == {}


async def test_preflight_warns_of_spf_dmarc_and_mx_already_there(
    dns_zones: SandboxZones, doh: DohResolver
) -> None:
    domain = dns_zones.new_domain()
    records = make_records(domain)
    dns_zones.set_records(domain, "TXT", ["v=spf1 include:_spf.google.com -all"])
    dns_zones.set_records(f"_dmarc.{domain}", "TXT", ["v=DMARC1; p=none; rua=mailto:d@x.org"])
    dns_zones.set_records(domain, "MX", ["1 aspmx.l.google.com."])
    warnings = await warnings_of(doh, records)
    assert set(warnings) == {"existing_spf", "dmarc_weaker", "mx_elsewhere"}
    assert f"v=spf1 {OURS} include:_spf.google.com -all" in warnings["existing_spf"].message
    assert "p=none" in warnings["dmarc_weaker"].message
    assert warnings["mx_elsewhere"].found == ["1 aspmx.l.google.com"]


async def test_preflight_warns_of_a_cname_at_the_domain(
    dns_zones: SandboxZones, doh: DohResolver
) -> None:
    domain = dns_zones.new_domain()
    target = f"app.{domain.partition('.')[2]}"
    dns_zones.set_records(target, "A", ["192.0.2.1"])
    dns_zones.set_records(domain, "CNAME", [f"{target}."])
    warnings = await warnings_of(doh, make_records(domain))
    assert warnings["cname_at_domain"].found == [target]


DNSKEY = "257 3 13 " + "A" * 88


async def test_preflight_reports_dnssec(dns_zones: SandboxZones, doh: DohResolver) -> None:
    domain = dns_zones.new_domain()
    zone = domain.partition(".")[2]
    dns_zones.set_records(zone, "DS", ["12345 13 2 " + "ab" * 32])
    assert "dnssec_broken" in await warnings_of(doh, make_records(domain))
    dns_zones.set_records(zone, "DNSKEY", [DNSKEY])
    warnings = await warnings_of(doh, make_records(domain))
    assert "dnssec_signed" in warnings
    assert "dnssec_broken" not in warnings
