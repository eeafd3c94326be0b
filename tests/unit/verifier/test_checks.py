"""The pure matching rules: one record kind at a time, then the probe's verdict."""

from __future__ import annotations

import random
import string
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domainflow.contracts.events import (
    CheckOutcome,
    DkimStatus,
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
    check_dmarc,
    check_mx,
    check_spf,
    check_verification,
    dmarc_tags,
    doubled_zone_names,
    is_spf,
    spf_includes,
    spf_lookups_needed,
    txt_text,
    verification_outcome,
)
from domainflow.verifier.spf import Query

DOMAIN = "mail.acme.com"
MX = [MxRecord(name=DOMAIN, priority=10, target="mail.sendmux.ai")]
SPF = NamedRecord(name=DOMAIN, value="v=spf1 include:amazonses.com include:sendmux.ai ~all")
DMARC = NamedRecord(name=f"_dmarc.{DOMAIN}", value="v=DMARC1; p=quarantine")
OWNERSHIP = NamedRecord(name=f"_sendmux.{DOMAIN}", value="sendmux-verify=team_abc123")
MISSING: list[LookupResult] = [NxDomain(), NoData(), Found(())]
DNS_KINDS = [RecordKind.MX, RecordKind.VERIFICATION_TXT, RecordKind.SPF, RecordKind.DMARC]


def found(*records: str) -> Found:
    return Found(records)


def evaluated_spf(
    expected: NamedRecord, result: LookupResult, world: Mapping[Query, LookupResult]
) -> RecordCheck:
    """`check_spf` after asking, round by round, what it needs of `world` (absent: NXDOMAIN)."""
    answers: dict[Query, LookupResult] = {}
    for _ in range(20):
        needed = spf_lookups_needed(expected, result, answers)
        if not needed:
            return check_spf(expected, result, answers)
        answers.update({query: world.get(query, NxDomain()) for query in needed})
    raise AssertionError("the evaluation kept asking")


def passes(check: RecordCheck) -> bool:
    return check.outcome == CheckOutcome.PASS and check.reason is None


# -- MX -----------------------------------------------------------------------------------


def test_mx_in_place_passes() -> None:
    check = check_mx(MX, found("10 mail.sendmux.ai."))
    assert passes(check)
    assert check.record == RecordKind.MX
    assert check.name == DOMAIN
    assert check.expected == "10 mail.sendmux.ai"
    assert check.found == ["10 mail.sendmux.ai"]


@pytest.mark.parametrize(
    "answer", ["10 MAIL.SENDMUX.AI.", "10 mail.sendmux.ai", "10 Mail.SendMux.Ai."]
)
def test_mx_ignores_case_and_trailing_dot(answer: str) -> None:
    assert passes(check_mx(MX, found(answer)))


def test_mx_with_a_backup_beside_it_passes() -> None:
    assert passes(check_mx(MX, found("20 backup.example.net.", "10 mail.sendmux.ai.")))


@pytest.mark.parametrize("answer", [NxDomain(), NoData()])
def test_mx_missing(answer: LookupResult) -> None:
    check = check_mx(MX, answer)
    assert check.outcome == CheckOutcome.FAIL
    assert check.reason == "record_missing"
    assert check.found == []
    assert "not acme.com" in check.message


def test_mx_wrong_priority() -> None:
    check = check_mx(MX, found("20 mail.sendmux.ai."))
    assert check.outcome == CheckOutcome.FAIL
    assert check.reason == "wrong_priority"
    assert "priority 20" in check.message
    assert "set the priority to 10" in check.message


def test_mx_pointing_elsewhere_mentions_proxying() -> None:
    check = check_mx(MX, found("10 mx.other-provider.com."))
    assert check.reason == "value_mismatch"
    assert "mx.other-provider.com" in check.message
    assert "MX records cannot be proxied — set DNS only" in check.message


def test_null_mx_is_a_mismatch() -> None:
    assert check_mx(MX, found("0 .")).reason == "value_mismatch"


def test_mx_unavailable_is_inconclusive() -> None:
    check = check_mx(MX, Unavailable("timeout"))
    assert check.outcome == CheckOutcome.INCONCLUSIVE
    assert check.reason == "resolver_unavailable"
    assert "timeout" in check.message


def test_mx_expects_one_name() -> None:
    with pytest.raises(ValueError, match="one name"):
        check_mx([*MX, MxRecord(name="acme.com", priority=10, target="x.y")], NoData())


# -- ownership TXT ------------------------------------------------------------------------


def test_ownership_exact_value_passes() -> None:
    check = check_verification(OWNERSHIP, found("something else", OWNERSHIP.value))
    assert passes(check)
    assert check.record == RecordKind.VERIFICATION_TXT


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("sendmux-verify=team_zzz999", "another team's public ID"),
        ("team_abc123", "missing the sendmux-verify= prefix"),
        (' "sendmux-verify=team_abc123"', "extra spaces or quotes"),
        ("SENDMUX-VERIFY=TEAM_ABC123", "its value differs"),
        ("sendmux-verify=team_abc123 ", "extra spaces or quotes"),
    ],
)
def test_ownership_mismatch_says_how(value: str, detail: str) -> None:
    check = check_verification(OWNERSHIP, found(value))
    assert check.outcome == CheckOutcome.FAIL
    assert check.reason == "value_mismatch"
    assert check.found == [value]
    assert detail in check.message


@pytest.mark.parametrize("answer", [NxDomain(), NoData()])
def test_ownership_missing_mentions_the_doubled_zone(answer: LookupResult) -> None:
    check = check_verification(OWNERSHIP, answer)
    assert check.reason == "record_missing"
    assert "_sendmux.mail.acme.com.mail.acme.com" in check.message
    assert "2–5 minutes" in check.message


@pytest.mark.parametrize(
    ("where", "typed"),
    [
        ("_sendmux.mail.acme.com.mail.acme.com", "_sendmux"),
        ("_sendmux.mail.acme.com.acme.com", "_sendmux.mail"),
    ],
)
def test_ownership_found_where_the_zone_was_appended(where: str, typed: str) -> None:
    elsewhere: dict[str, LookupResult] = {
        name: NxDomain() for name in doubled_zone_names(OWNERSHIP.name, [DOMAIN, "acme.com"])
    }
    elsewhere[where] = found(OWNERSHIP.value)
    check = check_verification(OWNERSHIP, NxDomain(), elsewhere)
    assert check.outcome == CheckOutcome.FAIL
    assert check.reason == "zone_appended_twice"
    assert where in check.message
    assert f"Enter the name as {typed} " in check.message
    assert check.found == [f"{where}: {OWNERSHIP.value}"]


def test_ownership_doubled_with_another_value_is_just_missing() -> None:
    elsewhere: dict[str, LookupResult] = {
        f"{OWNERSHIP.name}.{DOMAIN}": found("sendmux-verify=team_other"),
        f"{OWNERSHIP.name}.acme.com": Unavailable("timeout"),
    }
    assert check_verification(OWNERSHIP, NoData(), elsewhere).reason == "record_missing"


def test_ownership_unavailable_is_inconclusive() -> None:
    check = check_verification(OWNERSHIP, Unavailable("servfail"))
    assert check.outcome == CheckOutcome.INCONCLUSIVE
    assert check.reason == "resolver_unavailable"


def test_doubled_zone_names() -> None:
    assert doubled_zone_names("_sendmux.mail.acme.com.", ["mail.acme.com", "acme.com."]) == [
        "_sendmux.mail.acme.com.mail.acme.com",
        "_sendmux.mail.acme.com.acme.com",
    ]
    assert doubled_zone_names("_x.acme.com", ["acme.com", "ACME.com", ""]) == [
        "_x.acme.com.acme.com"
    ]


# -- SPF ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        "v=spf1 include:amazonses.com include:sendmux.ai ~all",
        "v=spf1 include:sendmux.ai include:amazonses.com -all",
        "V=SPF1 INCLUDE:AmazonSES.com +include:sendmux.ai. ?all",
        "v=spf1 include:_spf.google.com include:amazonses.com include:sendmux.ai ~all",
        "v=spf1 ip4:192.0.2.0/24 mx a include:amazonses.com include:sendmux.ai redirect=x.y",
    ],
)
def test_spf_with_every_include_passes(record: str) -> None:
    world: dict[Query, LookupResult] = {
        ("_spf.google.com", "TXT"): found("v=spf1 ip4:192.0.2.1 ~all"),
        (DOMAIN, "A"): found("192.0.2.1"),
        (DOMAIN, "MX"): found("10 mx.acme.com."),
    }
    check = evaluated_spf(SPF, found("google-site-verification=abc", record), world)
    assert passes(check), check.message
    assert check.record == RecordKind.SPF


@pytest.mark.parametrize("answer", MISSING)
def test_spf_missing(answer: LookupResult) -> None:
    assert check_spf(SPF, answer).reason == "record_missing"


def test_spf_among_other_txt_only_is_missing() -> None:
    check = check_spf(SPF, found("v=spf10 include:amazonses.com", "hello"))
    assert check.reason == "record_missing"
    assert check.found == ["v=spf10 include:amazonses.com", "hello"]


def test_two_spf_records_fail_with_a_merged_suggestion() -> None:
    check = check_spf(
        SPF,
        found("v=spf1 include:_spf.google.com ~all", SPF.value),
    )
    assert check.reason == "multiple_spf_records"
    assert (
        "v=spf1 include:amazonses.com include:sendmux.ai include:_spf.google.com ~all"
        in check.message
    )
    assert check.details["merged_record"] == (
        "v=spf1 include:amazonses.com include:sendmux.ai include:_spf.google.com ~all"
    )


@pytest.mark.parametrize(
    ("record", "missing"),
    [
        ("v=spf1 include:amazonses.com ~all", "include:sendmux.ai"),
        ("v=spf1 include:sendmux.ai ~all", "include:amazonses.com"),
        ("v=spf1 include:amazonses.com ~include:sendmux.ai ~all", "include:sendmux.ai"),
        ("v=spf1 ~all", "include:amazonses.com include:sendmux.ai"),
    ],
)
def test_spf_include_missing_names_it(record: str, missing: str) -> None:
    check = check_spf(SPF, found(record))
    assert check.reason == "spf_include_missing"
    assert f"lacks {missing} " in check.message
    assert "whitespace-sensitive" in check.message


def test_a_stray_space_is_a_permanent_error_receivers_reject() -> None:
    check = check_spf(SPF, found("v=spf1 include: amazonses.com include:sendmux.ai ~all"))
    assert check.reason == "spf_invalid"
    assert "include: needs a domain" in check.message


def test_spf_unavailable_is_inconclusive() -> None:
    assert check_spf(SPF, Unavailable("refused")).outcome == CheckOutcome.INCONCLUSIVE


def test_spf_parsing() -> None:
    assert is_spf("v=spf1")
    assert is_spf("V=SPF1 -all")
    assert not is_spf("v=spf10 -all")
    assert not is_spf(" v=spf1 -all")
    assert spf_includes("v=spf1 include:A.com. +include:b.com -include:c.com include:a.com") == [
        "a.com",
        "b.com",
    ]


# -- DMARC --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        "v=DMARC1; p=quarantine",
        "v=DMARC1;p=quarantine",
        "v = DMARC1 ; p = Quarantine ; rua=mailto:d@acme.com; pct=50; adkim=s",
        "v=DMARC1; p=reject",
        "v=DMARC1; p=quarantine;",
    ],
)
def test_dmarc_quarantine_or_stricter_passes(record: str) -> None:
    check = check_dmarc(DMARC, found("unrelated", record))
    assert passes(check), check.message
    assert check.record == RecordKind.DMARC


@pytest.mark.parametrize("record", ["v=DMARC1; p=none", "v=DMARC1; rua=mailto:d@acme.com"])
def test_dmarc_weak_policy(record: str) -> None:
    check = check_dmarc(DMARC, found(record))
    assert check.reason == "dmarc_policy_too_weak"
    assert "don't remove p=quarantine" in check.message


@pytest.mark.parametrize("answer", MISSING)
def test_dmarc_missing(answer: LookupResult) -> None:
    check = check_dmarc(DMARC, answer)
    assert check.reason == "record_missing"
    assert "_dmarc.mail.acme.com" in check.message


def test_dmarc_must_start_with_the_version() -> None:
    assert check_dmarc(DMARC, found("p=quarantine; v=DMARC1")).reason == "record_missing"
    assert check_dmarc(DMARC, found("v=dmarc1; p=quarantine")).reason == "value_mismatch"


def test_two_dmarc_records_fail() -> None:
    check = check_dmarc(DMARC, found("v=DMARC1; p=quarantine", "v=DMARC1; p=reject"))
    assert check.reason == "multiple_dmarc_records"


def test_dmarc_unknown_policy_is_a_mismatch() -> None:
    assert check_dmarc(DMARC, found("v=DMARC1; p=quarantin")).reason == "value_mismatch"


def test_dmarc_unavailable_is_inconclusive() -> None:
    assert check_dmarc(DMARC, Unavailable("timeout")).outcome == CheckOutcome.INCONCLUSIVE


def test_dmarc_tags() -> None:
    assert dmarc_tags("v=DMARC1; P=reject; rua=mailto:a@b") == {
        "v": "DMARC1",
        "p": "reject",
        "rua": "mailto:a@b",
    }
    assert dmarc_tags("v=spf1 -all") is None


# -- the verdict --------------------------------------------------------------------------


def _all(outcome: CheckOutcome) -> list[RecordCheck]:
    return [
        RecordCheck(record=kind, outcome=outcome, name=DOMAIN, expected="x") for kind in RecordKind
    ]


def test_everything_passes() -> None:
    assert verification_outcome(_all(CheckOutcome.PASS), DkimStatus.SUCCESS) == "passed"


@pytest.mark.parametrize("dkim", [s for s in DkimStatus if s != DkimStatus.SUCCESS])
def test_dkim_not_success_fails(dkim: DkimStatus) -> None:
    assert verification_outcome(_all(CheckOutcome.PASS), dkim) == VerificationOutcome.FAILED


def test_ses_unreachable_is_inconclusive() -> None:
    assert verification_outcome(_all(CheckOutcome.PASS), None) == "inconclusive"
    assert verification_outcome(_all(CheckOutcome.FAIL), None) == "inconclusive"


def test_one_failure_fails() -> None:
    checks = _all(CheckOutcome.PASS)
    checks[2] = checks[2].model_copy(update={"outcome": CheckOutcome.FAIL})
    assert verification_outcome(checks, DkimStatus.SUCCESS) == "failed"


def test_inconclusive_wins_over_a_failure() -> None:
    checks = _all(CheckOutcome.FAIL)
    checks[0] = checks[0].model_copy(update={"outcome": CheckOutcome.INCONCLUSIVE})
    assert verification_outcome(checks, DkimStatus.FAILED) == "inconclusive"


# -- properties ---------------------------------------------------------------------------

labels = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)
hosts = st.lists(labels, min_size=2, max_size=4).map(".".join)
ascii_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=300
)


def _vary_case(text: str, flips: list[bool]) -> str:
    return "".join(
        c.upper() if flips and flips[i % len(flips)] else c.lower() for i, c in enumerate(text)
    )


def _split(text: str, cuts: list[int]) -> list[bytes]:
    raw = text.encode()
    points = sorted({cut % (len(raw) + 1) for cut in cuts})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]


@given(host=hosts, priority=st.integers(0, 65535), flips=st.lists(st.booleans()), dot=st.booleans())
def test_mx_match_ignores_case_and_trailing_dot(
    host: str, priority: int, flips: list[bool], dot: bool
) -> None:
    expected = [MxRecord(name=DOMAIN, priority=priority, target=host)]
    answer = f"{priority} {_vary_case(host, flips)}{'.' if dot else ''}"
    assert passes(check_mx(expected, found(answer)))


@given(host=hosts, priority=st.integers(0, 65535), other=st.integers(0, 65535))
def test_mx_other_priority_never_passes(host: str, priority: int, other: int) -> None:
    expected = [MxRecord(name=DOMAIN, priority=priority, target=host)]
    check = check_mx(expected, found(f"{other} {host}."))
    assert passes(check) == (other == priority)
    if other != priority:
        assert check.reason == "wrong_priority"


@given(value=ascii_text, cuts=st.lists(st.integers(0, 400), max_size=5))
def test_txt_strings_join_back(value: str, cuts: list[int]) -> None:
    assert txt_text(_split(value, cuts)) == value


@given(team=labels, cuts=st.lists(st.integers(0, 60), max_size=4))
def test_ownership_split_anywhere_still_matches(team: str, cuts: list[int]) -> None:
    value = f"sendmux-verify={team}"
    expected = NamedRecord(name=OWNERSHIP.name, value=value)
    assert passes(check_verification(expected, found(txt_text(_split(value, cuts)))))


@given(value=ascii_text, other=ascii_text)
def test_ownership_is_byte_exact(value: str, other: str) -> None:
    expected = NamedRecord(name=OWNERSHIP.name, value=value)
    assert passes(check_verification(expected, found(other))) == (value == other)


spf_extras = st.lists(
    st.one_of(
        st.sampled_from(["a", "mx", "ptr", "-all", "~all", "?all", "exists:%{i}.x.org"]),
        hosts.map(lambda h: f"include:{h}"),
        hosts.map(lambda h: f"-include:{h}"),
        st.ip_addresses(v=4).map(lambda ip: f"ip4:{ip}"),
        hosts.map(lambda h: f"redirect={h}"),
    ),
    max_size=8,
)


@given(extras=spf_extras, order=st.randoms(use_true_random=False), cuts=st.lists(st.integers()))
def test_extra_spf_terms_after_the_required_includes_never_break_a_pass(
    extras: list[str], order: random.Random, cuts: list[int]
) -> None:
    terms = ["include:amazonses.com", "include:sendmux.ai"]
    order.shuffle(terms)
    record = " ".join(["v=spf1", *terms, *extras])
    assert passes(evaluated_spf(SPF, found(txt_text(_split(record, cuts))), {}))


@given(extras=spf_extras, ending=st.sampled_from(["-all", "~all", "?all", "all", "+all"]))
def test_required_includes_after_an_all_never_pass(extras: list[str], ending: str) -> None:
    record = " ".join(["v=spf1", *extras, ending, "include:amazonses.com include:sendmux.ai"])
    check = evaluated_spf(SPF, found(record), {})
    assert not passes(check)


@given(flips=st.lists(st.booleans(), min_size=1), extras=spf_extras)
def test_spf_ignores_letter_case(flips: list[bool], extras: list[str]) -> None:
    record = " ".join([*SPF.value.split(" ")[:-1], *extras, "~all"])
    assert passes(evaluated_spf(SPF, found(_vary_case(record, flips)), {}))


@given(extras=spf_extras, copies=st.integers(2, 4))
def test_more_than_one_spf_record_always_fails(extras: list[str], copies: int) -> None:
    record = " ".join([SPF.value, *extras])
    check = check_spf(SPF, found(*[record] * copies))
    assert check.reason == "multiple_spf_records"


@given(
    policy=st.sampled_from(["none", "quarantine", "reject"]),
    tags=st.lists(
        st.sampled_from(["rua=mailto:a@acme.com", "pct=50", "adkim=s", "aspf=r", "sp=none"]),
        unique=True,
    ),
)
def test_dmarc_extra_tags_never_matter(policy: str, tags: list[str]) -> None:
    record = "; ".join(["v=DMARC1", f"p={policy}", *tags])
    check = check_dmarc(DMARC, found(record))
    assert passes(check) == (policy != "none")


outcomes = st.lists(st.sampled_from(list(CheckOutcome)), min_size=4, max_size=4)


@given(results=outcomes, dkim=st.none() | st.sampled_from(list(DkimStatus)))
def test_verdict_rules(results: list[CheckOutcome], dkim: DkimStatus | None) -> None:
    checks = [
        RecordCheck(record=kind, outcome=outcome, name=DOMAIN, expected="x")
        for kind, outcome in zip(DNS_KINDS, results, strict=True)
    ]
    verdict = verification_outcome(checks, dkim)
    if dkim is None or CheckOutcome.INCONCLUSIVE in results:
        assert verdict == VerificationOutcome.INCONCLUSIVE
    elif dkim == DkimStatus.SUCCESS and set(results) == {CheckOutcome.PASS}:
        assert verdict == VerificationOutcome.PASSED
    else:
        assert verdict == VerificationOutcome.FAILED
