"""The pure diagnoses: CNAME conflicts, propagation, DKIM from DNS, and pre-flight warnings."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from domainflow.contracts.events import (
    CheckOutcome,
    DkimRecord,
    DkimStatus,
    DnsRecords,
    MxRecord,
    NamedRecord,
    RecordCheck,
    RecordKind,
    VerificationOutcome,
)
from domainflow.verifier.checks import (
    Found,
    LookupResult,
    NoData,
    NxDomain,
    Unavailable,
    authority_unreachable,
    check_dkim_dns,
    check_dmarc,
    cname_conflict,
    delegated_zone,
    negative_caching_time,
    preflight_warnings,
    propagating,
    verification_outcome,
)

DOMAIN = "mail.acme.com"
DMARC = NamedRecord(name=f"_dmarc.{DOMAIN}", value="v=DMARC1; p=quarantine")
DKIM = [
    DkimRecord(name=f"t{i}._domainkey.{DOMAIN}", value=f"t{i}.dkim.amazonses.com")
    for i in (1, 2, 3)
]
RECORDS = DnsRecords(
    mx=[MxRecord(name=DOMAIN, priority=10, target="mail.sendmux.ai")],
    spf=NamedRecord(name=DOMAIN, value="v=spf1 include:amazonses.com include:sendmux.ai ~all"),
    dmarc=DMARC,
    dkim=DKIM,
    verification=NamedRecord(name=f"_sendmux.{DOMAIN}", value="sendmux-verify=team_abc"),
)
NOTHING = NxDomain()


def test_a_failing_record_behind_a_cname_is_a_conflict() -> None:
    answer = NoData(alias="site.example.net.")
    check = cname_conflict(check_dmarc(DMARC, answer), answer)
    assert check.reason == "cname_conflict"
    assert check.details["cname_target"] == "site.example.net"


def test_a_passing_record_behind_a_cname_stays_passing() -> None:
    answer = Found(("v=DMARC1; p=reject",), alias="dmarc.example.net.")
    assert cname_conflict(check_dmarc(DMARC, answer), answer).outcome == CheckOutcome.PASS


@given(ttl=st.integers(0, 86_400))
def test_stale_cache_with_a_passing_authority_is_propagating(ttl: int) -> None:
    cached = Found(("v=DMARC1; p=none",), ttl=ttl)
    at_authority = check_dmarc(DMARC, Found((DMARC.value,)))
    check = propagating(check_dmarc(DMARC, cached), at_authority, cached, "ns1.example")
    assert check.reason == "propagating"
    assert check.details["ttl_left"] == ttl
    assert f"up to {ttl} s" in check.message


def test_a_negative_answer_uses_the_zone_bound() -> None:
    at_authority = check_dmarc(DMARC, Found((DMARC.value,)))
    check = propagating(check_dmarc(DMARC, NOTHING), at_authority, NOTHING, "ns1", ttl_bound=60)
    assert check.details["ttl_left"] == 60


def test_failing_at_the_authority_too_is_not_propagating() -> None:
    failing = check_dmarc(DMARC, NOTHING)
    assert propagating(failing, failing, NOTHING, "ns1") == failing


@given(ttl=st.integers(0, 10**6), minimum=st.integers(0, 10**6))
def test_negative_caching_time_is_the_smaller(ttl: int, minimum: int) -> None:
    soa = Found((f"ns1.example. host.example. 1 3600 600 86400 {minimum}",), ttl=ttl)
    assert negative_caching_time(soa) == min(ttl, minimum)
    assert negative_caching_time(NOTHING) is None


def test_unreachable_authority_keeps_the_verdict() -> None:
    failing = check_dmarc(DMARC, NOTHING)
    noted = authority_unreachable(failing, "timeout")
    assert (noted.reason, noted.outcome) == (failing.reason, failing.outcome)
    assert noted.details["authority"] == "unreachable: timeout"


def test_a_missing_record_in_a_delegated_zone_names_its_servers() -> None:
    check = delegated_zone(check_dmarc(DMARC, NOTHING), DOMAIN, "acme.com", ["ns.other.net"])
    assert check.reason == "delegated_elsewhere"
    assert "ns.other.net" in check.message


# -- DKIM ---------------------------------------------------------------------------------


def cnames(**overrides: LookupResult) -> dict[str, LookupResult]:
    base: dict[str, LookupResult] = {r.name: Found((r.value + ".",)) for r in DKIM}
    return {**base, **{DKIM[int(k[1:]) - 1].name: v for k, v in overrides.items()}}


def test_dkim_all_in_place() -> None:
    check = check_dkim_dns(DKIM, DkimStatus.PENDING, cnames(), {}, {})
    assert (check.record, check.outcome, check.reason) == (
        RecordKind.DKIM, CheckOutcome.PASS, "dkim_awaiting_ses",
    )  # fmt: skip


def test_dkim_each_problem_is_named() -> None:
    answers = cnames(t1=NOTHING, t2=Found(("other.example.",)), t3=NoData())
    addresses: dict[str, LookupResult] = {DKIM[0].name: NOTHING, DKIM[2].name: Found(("1.2.3.4",))}
    check = check_dkim_dns(DKIM, DkimStatus.PENDING, answers, addresses, {})
    assert check.details["problems"] == [
        "dkim_cname_missing",
        "dkim_cname_mismatch",
        "dkim_proxied",
    ]
    assert check.reason == "dkim_cname_missing"


def test_dkim_unavailable_is_inconclusive() -> None:
    check = check_dkim_dns(DKIM, DkimStatus.PENDING, cnames(t2=Unavailable("timeout")), {}, {})
    assert check.outcome == CheckOutcome.INCONCLUSIVE


@given(outcome=st.sampled_from(CheckOutcome))
def test_the_dkim_check_never_decides_the_outcome(outcome: CheckOutcome) -> None:
    passing = [
        RecordCheck(record=kind, outcome=CheckOutcome.PASS, name=DOMAIN, expected="x")
        for kind in (RecordKind.MX, RecordKind.VERIFICATION_TXT, RecordKind.SPF, RecordKind.DMARC)
    ]
    dkim = RecordCheck(record=RecordKind.DKIM, outcome=outcome, name=DOMAIN, expected="x")
    assert verification_outcome([*passing, dkim], DkimStatus.SUCCESS) == VerificationOutcome.PASSED
    assert verification_outcome([*passing, dkim], DkimStatus.PENDING) == VerificationOutcome.FAILED


# -- pre-flight ---------------------------------------------------------------------------


def codes(
    mx: LookupResult = NOTHING,
    spf: LookupResult = NOTHING,
    dmarc: LookupResult = NOTHING,
    ds: LookupResult = NOTHING,
    dnskey: LookupResult = NOTHING,
) -> list[str]:
    return [w.code for w in preflight_warnings(RECORDS, mx, spf, dmarc, ds, dnskey, "acme.com")]


def test_preflight_nothing_published() -> None:
    assert codes() == []


def test_preflight_our_own_records_warn_of_nothing() -> None:
    assert (
        codes(
            mx=Found(("10 mail.sendmux.ai.",)),
            spf=Found((RECORDS.spf.value,)),
            dmarc=Found(("v=DMARC1; p=reject",)),
        )
        == []
    )


def test_preflight_each_warning() -> None:
    assert codes(spf=Found(("v=spf1 mx -all",))) == ["existing_spf"]
    assert codes(dmarc=Found(("v=DMARC1; p=none",))) == ["dmarc_weaker"]
    assert codes(mx=Found(("10 mx.other.net.",))) == ["mx_elsewhere"]
    assert codes(mx=NoData(alias="x.example.")) == ["cname_at_domain"]
    assert codes(ds=Found(("1 13 2 ab",)), dnskey=Found(("257 3 13 AA==",))) == ["dnssec_signed"]
    assert codes(ds=Found(("1 13 2 ab",)), dnskey=Unavailable("servfail")) == ["dnssec_broken"]


def test_preflight_of_a_send_only_domain_minds_no_mx_elsewhere() -> None:
    # Its records carry no MX: mail to it may well go elsewhere; a CNAME there still conflicts.
    sending = RECORDS.model_copy(update={"mx": []})

    def found(mx: LookupResult) -> list[str]:
        return [
            w.code
            for w in preflight_warnings(sending, mx, NOTHING, NOTHING, NOTHING, NOTHING, "acme.com")
        ]

    assert found(Found(("10 mx.other.net.",))) == []
    assert found(NoData(alias="x.example.")) == ["cname_at_domain"]
