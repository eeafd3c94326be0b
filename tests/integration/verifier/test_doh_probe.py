"""The DNS half of verification against a real DoH resolver (Unbound behind dnsdist).

Records are placed and changed while the sandbox runs; each test uses domains of its own.
Sandbox calls are synchronous on purpose (see tests/plugins/dns.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from domainflow.contracts.events import (
    CheckOutcome,
    DkimStatus,
    DnsRecords,
    MxRecord,
    NamedRecord,
    RecordCheck,
    RecordKind,
    VerificationOutcome,
)
from domainflow.sandbox.dns import DnsSandbox, SandboxError
from domainflow.verifier.adapters.doh import DohResolver, interpret_answer
from domainflow.verifier.checks import (
    Found,
    LookupResult,
    NoData,
    NxDomain,
    Unavailable,
    verification_outcome,
)
from domainflow.verifier.dns_probe import dns_check, probe_claim, probe_dns, zones_of
from tests.plugins.dns import SandboxZones, make_records

pytestmark = pytest.mark.integration


@pytest.fixture
async def doh(dns_sandbox: DnsSandbox) -> AsyncIterator[DohResolver]:
    async with DohResolver(
        dns_sandbox.doh_url, ca_file=dns_sandbox.ca_file, timeout=2.0, backoff=0.05
    ) as resolver:
        yield resolver


def by_kind(checks: list[RecordCheck]) -> dict[RecordKind, RecordCheck]:
    return {check.record: check for check in checks}


async def probe(doh: DohResolver, records: DnsRecords) -> dict[RecordKind, RecordCheck]:
    return by_kind(await probe_dns(doh, records))


def outcomes(checks: dict[RecordKind, RecordCheck]) -> dict[RecordKind, CheckOutcome]:
    return {kind: check.outcome for kind, check in checks.items()}


DNS_KINDS = [RecordKind.MX, RecordKind.VERIFICATION_TXT, RecordKind.SPF, RecordKind.DMARC]
ALL_PASS = dict.fromkeys(DNS_KINDS, CheckOutcome.PASS)


# -- the resolver client ------------------------------------------------------------------


async def test_lookup_kinds_of_answer(dns_zones: SandboxZones, doh: DohResolver) -> None:
    domain = dns_zones.new_domain()
    dns_zones.set_records(domain, "TXT", ['"v=spf1 include:a" " include:b ~all"', "plain"])
    dns_zones.set_records(domain, "MX", ["10 Mail.Sendmux.AI"])

    txt = await doh.lookup(domain, "TXT")
    assert isinstance(txt, Found)
    assert sorted(txt.records) == ["plain", "v=spf1 include:a include:b ~all"]
    assert await doh.lookup(domain, "MX") == Found(("10 Mail.Sendmux.AI.",))
    assert await doh.lookup(domain, "AAAA") == NoData()
    assert await doh.lookup(f"nothing.{domain}", "TXT") == NxDomain()
    assert await doh.lookup(f"{domain}.", dns.rdatatype.MX) == Found(("10 Mail.Sendmux.AI.",))


async def test_records_change_at_run_time(dns_zones: SandboxZones, doh: DohResolver) -> None:
    name = f"_sendmux.{dns_zones.new_domain()}"
    assert await doh.lookup(name, "TXT") == NxDomain()
    dns_zones.set_records(name, "TXT", ["one"])
    assert await doh.lookup(name, "TXT") == Found(("one",))
    dns_zones.set_records(name, "TXT", ["two"])
    assert await doh.lookup(name, "TXT") == Found(("two",))
    dns_zones.remove_name(name)
    assert await doh.lookup(name, "TXT") == NxDomain()


async def test_long_and_non_ascii_txt(dns_zones: SandboxZones, doh: DohResolver) -> None:
    name = dns_zones.new_domain()
    long_value = "k=" + "x" * 600  # placed as three character-strings
    dns_zones.set_records(name, "TXT", [long_value, ("é", "\"'\\")])
    answer = await doh.lookup(name, "TXT")
    assert isinstance(answer, Found)
    assert sorted(answer.records) == sorted([long_value, "é\"'\\"])


async def test_many_lookups_share_bounded_slots(
    dns_zones: SandboxZones, dns_sandbox: DnsSandbox
) -> None:
    domain = dns_zones.new_domain()
    dns_zones.set_records(domain, "TXT", ["hello"])
    async with DohResolver(
        dns_sandbox.doh_url, ca_file=dns_sandbox.ca_file, max_concurrency=2
    ) as resolver:
        answers = await asyncio.gather(*(resolver.lookup(domain, "TXT") for _ in range(40)))
    assert set(answers) == {Found(("hello",))}


async def test_untrusted_certificate_is_unavailable(dns_sandbox: DnsSandbox) -> None:
    async with DohResolver(dns_sandbox.doh_url, attempts=1) as system_trust:
        answer = await system_trust.lookup("acme.com", "TXT")
    assert isinstance(answer, Unavailable)
    assert answer.reason.startswith("tls error")


async def test_wrong_path_is_an_http_error(dns_sandbox: DnsSandbox) -> None:
    url = dns_sandbox.doh_url.replace("/dns-query", "/elsewhere")
    async with DohResolver(url, ca_file=dns_sandbox.ca_file, attempts=1) as resolver:
        answer = await resolver.lookup("acme.com", "TXT")
    assert answer == Unavailable("http 404")


def test_cname_chains_inside_an_answer_are_followed() -> None:
    # Unbound does not chase CNAMEs in local data, so this answer is built by hand.
    query = dns.message.make_query("a.acme.com", "TXT")
    answer = dns.message.make_response(query)
    answer.answer = [
        dns.rrset.from_text("a.acme.com.", 60, "IN", "CNAME", "B.acme.com."),
        dns.rrset.from_text("b.acme.com.", 60, "IN", "CNAME", "c.acme.com."),
        dns.rrset.from_text("c.acme.com.", 60, "IN", "TXT", '"v=spf1 " "-all"'),
    ]
    qname = dns.name.from_text("a.acme.com")
    assert interpret_answer(answer, qname, dns.rdatatype.TXT) == (Found(("v=spf1 -all",)), False)
    assert interpret_answer(answer, qname, dns.rdatatype.MX) == (NoData(), False)
    assert interpret_answer(answer, qname, dns.rdatatype.CNAME) == (
        Found(("B.acme.com.",)),
        False,
    )
    answer.answer = answer.answer[:2]
    answer.set_rcode(dns.rcode.NXDOMAIN)
    assert interpret_answer(answer, qname, dns.rdatatype.TXT) == (NxDomain(), False)
    answer.answer = [
        dns.rrset.from_text("a.acme.com.", 60, "IN", "CNAME", "b.acme.com."),
        dns.rrset.from_text("b.acme.com.", 60, "IN", "CNAME", "a.acme.com."),
    ]
    answer.set_rcode(dns.rcode.NOERROR)
    assert interpret_answer(answer, qname, dns.rdatatype.TXT) == (NoData(), False)
    answer.set_rcode(dns.rcode.SERVFAIL)
    assert interpret_answer(answer, qname, dns.rdatatype.TXT) == (Unavailable("servfail"), True)
    answer.set_rcode(dns.rcode.REFUSED)
    assert interpret_answer(answer, qname, dns.rdatatype.TXT) == (Unavailable("refused"), False)


# -- the probe ----------------------------------------------------------------------------


async def test_all_records_right_pass(dns_zones: SandboxZones, doh: DohResolver) -> None:
    domain = dns_zones.new_domain()
    records = make_records(domain, mail_from=f"bounce.{domain}")
    dns_zones.place(records)
    checks = await dns_check(doh)(records)
    # The four required checks, then the MAIL FROM subdomain's two (reported, not required).
    mail_from = [RecordKind.MAIL_FROM_MX, RecordKind.MAIL_FROM_SPF]
    assert [check.record for check in checks] == [*DNS_KINDS, *mail_from]
    assert all(check.outcome == CheckOutcome.PASS for check in checks[len(DNS_KINDS) :])
    checks = checks[: len(DNS_KINDS)]
    assert outcomes(by_kind(checks)) == ALL_PASS
    assert verification_outcome(checks, DkimStatus.SUCCESS) == VerificationOutcome.PASSED
    assert verification_outcome(checks, DkimStatus.PENDING) == VerificationOutcome.FAILED


async def test_nothing_placed_all_missing(dns_zones: SandboxZones, doh: DohResolver) -> None:
    checks = await probe(doh, make_records(dns_zones.new_domain()))
    assert {check.reason for check in checks.values()} == {"record_missing"}
    assert verification_outcome(list(checks.values()), DkimStatus.SUCCESS) == "failed"


@pytest.mark.parametrize(
    ("kind", "remove"),
    [
        (RecordKind.MX, lambda z, r: z.set_records(r.spf.name, "MX", [])),
        (RecordKind.VERIFICATION_TXT, lambda z, r: z.remove_name(r.verification.name)),
        (RecordKind.SPF, lambda z, r: z.set_records(r.spf.name, "TXT", [])),
        (RecordKind.DMARC, lambda z, r: z.remove_name(r.dmarc.name)),
    ],
)
async def test_each_missing_record(
    dns_zones: SandboxZones,
    doh: DohResolver,
    kind: RecordKind,
    remove: Callable[[SandboxZones, DnsRecords], None],
) -> None:
    records = make_records(dns_zones.new_domain())
    dns_zones.place(records)
    remove(dns_zones, records)
    checks = await probe(doh, records)
    assert checks[kind].outcome == CheckOutcome.FAIL
    assert checks[kind].reason == "record_missing"
    assert outcomes(checks) == {**ALL_PASS, kind: CheckOutcome.FAIL}


@pytest.mark.parametrize(
    ("kind", "rdtype", "where", "values", "reason"),
    [
        (RecordKind.MX, "MX", "domain", ["20 mail.sendmux.ai"], "wrong_priority"),
        (RecordKind.MX, "MX", "domain", ["10 mx.cloudflare-proxy.net"], "value_mismatch"),
        (RecordKind.MX, "MX", "registrable", ["10 mail.sendmux.ai"], "record_missing"),
        (
            RecordKind.VERIFICATION_TXT,
            "TXT",
            "_sendmux",
            ["sendmux-verify=team_zzz"],
            "value_mismatch",
        ),
        (RecordKind.VERIFICATION_TXT, "TXT", "_sendmux", ["team_abc123"], "value_mismatch"),
        (
            RecordKind.SPF,
            "TXT",
            "domain",
            [
                "v=spf1 include:amazonses.com include:sendmux.ai ~all",
                "v=spf1 include:_spf.google.com ~all",
            ],
            "multiple_spf_records",
        ),
        (
            RecordKind.SPF,
            "TXT",
            "domain",
            ["v=spf1 include:amazonses.com ~all"],
            "spf_include_missing",
        ),
        (RecordKind.DMARC, "TXT", "_dmarc", ["v=DMARC1; p=none"], "dmarc_policy_too_weak"),
        (
            RecordKind.DMARC,
            "TXT",
            "_dmarc",
            ["v=DMARC1; p=quarantine", "v=DMARC1; p=reject"],
            "multiple_dmarc_records",
        ),
    ],
)
async def test_each_wrong_record(
    dns_zones: SandboxZones,
    doh: DohResolver,
    kind: RecordKind,
    rdtype: str,
    where: str,
    values: list[str],
    reason: str,
) -> None:
    domain = dns_zones.new_domain()
    records = make_records(domain)
    dns_zones.place(records)
    if where == "registrable":  # the MX placed on acme.com instead of mail.acme.com
        dns_zones.set_records(domain, rdtype, [])
        dns_zones.set_records(domain.partition(".")[2], rdtype, values)
    else:
        name = domain if where == "domain" else f"{where}.{domain}"
        dns_zones.set_records(name, rdtype, values)
    checks = await probe(doh, records)
    assert checks[kind].reason == reason, checks[kind].message
    assert outcomes(checks) == {**ALL_PASS, kind: CheckOutcome.FAIL}


async def test_wrong_mx_message_mentions_proxying(
    dns_zones: SandboxZones, doh: DohResolver
) -> None:
    records = make_records(dns_zones.new_domain())
    dns_zones.place(records)
    dns_zones.set_records(records.spf.name, "MX", ["10 proxied.example.net"])
    check = (await probe(doh, records))[RecordKind.MX]
    assert check.found == ["10 proxied.example.net"]
    assert "cannot be proxied" in check.message


async def test_zone_appended_twice(dns_zones: SandboxZones, doh: DohResolver) -> None:
    records = make_records(dns_zones.new_domain())
    dns_zones.place(records, zone_doubling=True)
    check = (await probe(doh, records))[RecordKind.VERIFICATION_TXT]
    doubled = f"{records.verification.name}.{records.spf.name}"
    assert check.reason == "zone_appended_twice"
    assert doubled in check.message
    # placing it right afterwards moves it: the probe passes
    dns_zones.place(records)
    assert outcomes(await probe(doh, records)) == ALL_PASS


async def test_registrable_zone_appended(dns_zones: SandboxZones, doh: DohResolver) -> None:
    domain = dns_zones.new_domain()
    registrable = domain.partition(".")[2]
    assert zones_of(domain) == [domain, registrable]
    records = make_records(domain)
    dns_zones.place(records)
    dns_zones.remove_name(records.verification.name)
    misplaced = f"{records.verification.name}.{registrable}"
    dns_zones.set_records(misplaced, "TXT", [records.verification.value])
    check = (await probe(doh, records))[RecordKind.VERIFICATION_TXT]
    assert check.reason == "zone_appended_twice"
    assert misplaced in check.message
    assert "Enter the name as _sendmux.mail " in check.message


async def test_split_txt_trailing_dots_and_case_pass(
    dns_zones: SandboxZones, doh: DohResolver
) -> None:
    domain = dns_zones.new_domain()
    records = make_records(domain)
    dns_zones.place(records)
    dns_zones.set_records(domain, "MX", ["10 MAIL.SendMux.AI.", "20 backup.example.net."])
    # A receiver follows the include first, so it has to exist.
    dns_zones.set_records("_spf.google.com", "TXT", ["v=spf1 ip4:74.125.0.0/16 ~all"])
    dns_zones.set_records(
        domain,
        "TXT",
        [
            '"V=SPF1 include:_spf.google.com INCLUDE:AmazonSES.com" " include:sendmux.ai. -all"',
            "google-site-verification=abc",
        ],
    )
    dns_zones.set_records(
        f"_dmarc.{domain}", "TXT", [("v=DMARC1; ", "p=reject; rua=mailto:d@x.org")]
    )
    dns_zones.set_records(f"_sendmux.{domain}", "TXT", [("sendmux-", "verify=", "team_abc123")])
    checks = await probe(doh, records)
    assert outcomes(checks) == ALL_PASS, [c.message for c in checks.values()]
    # the SPF record is reported joined, as written (Unbound shuffles the order of a set)
    assert any(
        text.startswith("V=SPF1 include:_spf.google.com INCLUDE:AmazonSES.com include:")
        for text in checks[RecordKind.SPF].found
    )
    records_with_dots = records.model_copy(
        update={"mx": [MxRecord(name=f"{domain}.", priority=10, target="mail.sendmux.ai.")]}
    )
    assert outcomes(await probe(doh, records_with_dots)) == ALL_PASS


async def test_resolver_down_is_inconclusive(dns_zones: SandboxZones, doh: DohResolver) -> None:
    records = make_records(dns_zones.new_domain())
    dns_zones.place(records)
    dns_zones.sandbox.stop_resolver()
    checks = await probe(doh, records)
    assert set(outcomes(checks).values()) == {CheckOutcome.INCONCLUSIVE}
    assert {check.reason for check in checks.values()} == {"resolver_unavailable"}
    assert "servfail" in checks[RecordKind.MX].message
    assert verification_outcome(list(checks.values()), DkimStatus.SUCCESS) == "inconclusive"
    # records survive a resolver restart, and the same client recovers
    dns_zones.sandbox.start_resolver()
    assert outcomes(await probe(doh, records)) == ALL_PASS


async def test_frontend_unreachable_is_inconclusive(
    dns_zones: SandboxZones, doh: DohResolver
) -> None:
    records = make_records(dns_zones.new_domain())
    dns_zones.place(records)
    assert outcomes(await probe(doh, records)) == ALL_PASS  # a pooled connection now exists
    dns_zones.sandbox.stop_frontend()
    checks = await probe(doh, records)
    assert set(outcomes(checks).values()) == {CheckOutcome.INCONCLUSIVE}
    assert "connection error" in checks[RecordKind.SPF].message
    assert verification_outcome(list(checks.values()), DkimStatus.SUCCESS) == "inconclusive"
    dns_zones.sandbox.start_frontend()
    assert outcomes(await probe(doh, records)) == ALL_PASS


class Watched:
    """A resolver that notes which lookups are in flight whenever one of them finishes."""

    def __init__(self, resolver: DohResolver) -> None:
        self._resolver = resolver
        self._in_flight: set[str] = set()
        self.alongside: list[int] = []  # how many were in flight as each one finished

    async def lookup(self, name: str, rdtype: str) -> LookupResult:
        key = f"{name}/{rdtype}"
        self._in_flight.add(key)
        try:
            return await self._resolver.lookup(name, rdtype)
        finally:
            self.alongside.append(len(self._in_flight))
            self._in_flight.discard(key)


async def test_frontend_hanging_times_out(dns_zones: SandboxZones, dns_sandbox: DnsSandbox) -> None:
    records = make_records(dns_zones.new_domain())
    dns_zones.place(records)
    dns_sandbox.freeze_frontend()
    async with DohResolver(
        dns_sandbox.doh_url, ca_file=dns_sandbox.ca_file, timeout=0.5, attempts=2, backoff=0.05
    ) as resolver:
        watched = Watched(resolver)
        # Without the timeout the probe would never return; this bound only keeps a broken
        # build from hanging the suite, it is far above what any machine needs.
        checks = by_kind(await asyncio.wait_for(probe_dns(watched, records), timeout=120))
    assert set(outcomes(checks).values()) == {CheckOutcome.INCONCLUSIVE}
    assert "timeout" in checks[RecordKind.DMARC].message
    # The four lookups hang side by side, not one after another: when the first gives up,
    # all four are in flight.
    assert watched.alongside == [4, 3, 2, 1]


# -- the sandbox itself -------------------------------------------------------------------


async def test_attach_places_through_the_state_file(
    dns_zones: SandboxZones, dns_sandbox: DnsSandbox, doh: DohResolver
) -> None:
    records = make_records(dns_zones.new_domain())
    dns_zones._domains.add(records.spf.name)  # cleaned up by the fixture
    attached = DnsSandbox.attach(dns_sandbox.state_file)
    assert attached.doh_url == dns_sandbox.doh_url
    attached.place(records)
    assert outcomes(await probe(doh, records)) == ALL_PASS
    with pytest.raises(SandboxError):
        attached.stop_resolver()
    attached.remove_domain(records.spf.name)
    attached.detach()
    assert (await probe(doh, records))[RecordKind.MX].reason == "record_missing"


def test_place_covers_every_record(dns_zones: SandboxZones) -> None:
    domain = dns_zones.new_domain()
    records = make_records(domain, mail_from=f"bounce.{domain}")
    dns_zones.place(records)
    served = dns_zones.sandbox.records()
    assert served[f"{domain}."] == {
        "MX": ["10 mail.sendmux.ai."],
        "TXT": ['"v=spf1 include:amazonses.com include:sendmux.ai ~all"'],
    }
    assert served[f"_dmarc.{domain}."] == {"TXT": ['"v=DMARC1; p=quarantine"']}
    assert served[f"_sendmux.{domain}."] == {"TXT": ['"sendmux-verify=team_abc123"']}
    for i in (1, 2, 3):
        assert served[f"tok{i}._domainkey.{domain}."] == {"CNAME": [f"tok{i}.dkim.amazonses.com."]}
    assert served[f"bounce.{domain}."] == {
        "MX": ["10 feedback-smtp.eu-west-1.amazonses.com."],
        "TXT": ['"v=spf1 include:amazonses.com ~all"'],
    }
    dns_zones.sandbox.remove(records)
    assert not [name for name in dns_zones.sandbox.records() if name.endswith(f"{domain}.")]


# -- claims -------------------------------------------------------------------------------


async def test_a_claim_sees_both_teams_txt_from_one_lookup(
    dns_zones: SandboxZones, doh: DohResolver
) -> None:
    name = f"_sendmux.{dns_zones.new_domain()}"
    claimant = NamedRecord(name=name, value="sendmux-verify=team_b")
    holder = NamedRecord(name=name, value="sendmux-verify=team_a")

    mine, theirs = await probe_claim(doh, claimant, holder)
    assert (mine.outcome, theirs.outcome) == (CheckOutcome.FAIL, CheckOutcome.FAIL)
    assert mine.reason == "record_missing"
    assert (mine.name, mine.expected) == (name, "sendmux-verify=team_b")  # what to publish

    dns_zones.set_records(name, "TXT", ["sendmux-verify=team_a", "sendmux-verify=team_b"])
    mine, theirs = await probe_claim(doh, claimant, holder)
    assert (mine.outcome, theirs.outcome) == (CheckOutcome.PASS, CheckOutcome.PASS)

    dns_zones.set_records(name, "TXT", ["sendmux-verify=team_b"])
    mine, theirs = await probe_claim(doh, claimant, holder)
    assert (mine.outcome, theirs.outcome) == (CheckOutcome.PASS, CheckOutcome.FAIL)
    assert theirs.reason == "value_mismatch"
