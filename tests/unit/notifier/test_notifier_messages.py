"""The notifier's emails: what they say, and that nothing from outside reaches the HTML raw."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from domainflow.contracts import (
    ChangeReason,
    CheckOutcome,
    DkimStatus,
    DomainStatus,
    NotificationRequested,
    RecordCheck,
    RecordKind,
)
from domainflow.notifier.messages import MAX_VALUE_CHARS, clean, compose, problems_of

SPF = "v=spf1 include:amazonses.com include:sendmux.ai ~all"


def check(
    record: RecordKind,
    *,
    outcome: CheckOutcome = CheckOutcome.FAIL,
    name: str = "mail.acme.com",
    expected: str = SPF,
    found: list[str] | None = None,
    reason: str | None = "value_mismatch",
    message: str = "",
) -> RecordCheck:
    return RecordCheck(
        record=record,
        outcome=outcome,
        name=name,
        expected=expected,
        found=found or [],
        reason=reason,
        message=message,
    )


def transition(
    *,
    new_status: DomainStatus = DomainStatus.FAILED,
    domain: str = "mail.acme.com",
    checks: list[RecordCheck] | None = None,
    dkim: DkimStatus | None = DkimStatus.SUCCESS,
    reason: str = "verification failed on two consecutive cycles",
    domain_id: str = "mdom_abc",
) -> NotificationRequested:
    return NotificationRequested(
        correlation_id="req_1",
        team_id="team_abc",
        domain_id=domain_id,
        domain=domain,
        region="us-east-1",
        old_status=DomainStatus.PENDING,
        new_status=new_status,
        reason=reason,
        transition_event_id=uuid.uuid4(),
        checks=checks or [],
        ses_dkim_status=dkim,
        owner_emails=["owner@acme.com"],
    )


def test_failed_mail_names_the_domain_and_each_failing_record_with_expected_and_found() -> None:
    event = transition(
        checks=[
            check(
                RecordKind.SPF,
                found=[SPF, "v=spf1 include:_spf.google.com ~all"],
                reason="multiple_spf_records",
                message="Two SPF records were found on mail.acme.com.",
            ),
            check(
                RecordKind.DMARC,
                name="_dmarc.mail.acme.com",
                expected="v=DMARC1; p=quarantine",
                found=["v=DMARC1; p=none"],
                reason="dmarc_policy_too_weak",
            ),
            check(RecordKind.MX, outcome=CheckOutcome.PASS, expected="10 mail.sendmux.ai"),
        ]
    )
    mail = compose(event)
    assert "mail.acme.com" in mail.subject
    assert "failed" in mail.subject.lower()
    for part in (mail.text, html.unescape(mail.html)):
        assert "SPF record" in part
        assert "DMARC record" in part
        assert "MX record" not in part  # a passing check is not a problem
        assert SPF in part
        assert "v=spf1 include:_spf.google.com ~all" in part
        assert "v=DMARC1; p=none" in part
        assert "Two SPF records were found on mail.acme.com." in part
        assert "merge" in part.lower()  # seed 001: one SPF record per hostname
        assert "p=none does not protect" in part  # the weak-policy advice
        assert "POST /api/v1/domains/mdom_abc/verify" in part


def test_reason_codes_map_to_seed_troubleshooting_advice() -> None:
    zone = check(
        RecordKind.VERIFICATION_TXT,
        name="_sendmux.mail.acme.com",
        expected="sendmux-verify=team_abc",
        reason="zone_appended_twice",
    )
    proxied = check(RecordKind.MX, expected="10 mail.sendmux.ai", reason="wrong_priority")
    missing = check(RecordKind.DMARC, name="_dmarc.mail.acme.com", reason="record_missing")
    problems = problems_of(transition(checks=[zone, proxied, missing]))
    zone_advice = " ".join(problems[0].advice)
    assert "_sendmux.mail.acme.com.mail.acme.com" in zone_advice
    assert "DNS only" in " ".join(problems[1].advice)
    assert "No record was found at _dmarc.mail.acme.com" in " ".join(problems[2].advice)
    # no sentence from the verifier: the reason code's own sentence stands in
    assert problems[2].sentence == "No record was found."
    assert problems[2].found == ()


def test_unknown_reason_still_gets_the_records_general_advice() -> None:
    (problem,) = problems_of(transition(checks=[check(RecordKind.SPF, reason="weird_new_code")]))
    assert "weird_new_code" in problem.sentence
    assert any("whitespace-sensitive" in line for line in problem.advice)


def test_dkim_status_other_than_success_is_a_problem_with_its_advice() -> None:
    temporary = problems_of(transition(dkim=DkimStatus.TEMPORARY_FAILURE))
    assert [p.title for p in temporary] == ["DKIM (Amazon SES)"]
    assert any("within an hour" in a for a in temporary[0].advice)
    failed = problems_of(transition(dkim=DkimStatus.FAILED))
    assert any("72 hours" in a for a in failed[0].advice)
    assert "{token}._domainkey.mail.acme.com" in failed[0].name
    assert problems_of(transition(dkim=DkimStatus.SUCCESS)) == []
    assert problems_of(transition(dkim=None)) == []


def test_failed_mail_without_any_reported_problem_says_so() -> None:
    mail = compose(transition(checks=[], dkim=DkimStatus.SUCCESS))
    assert "did not say which record failed" in mail.text


def test_verified_mail_is_a_separate_message() -> None:
    mail = compose(transition(new_status=DomainStatus.VERIFIED))
    assert mail.subject == "mail.acme.com is verified"
    assert "verified" in mail.text
    assert "What failed" not in mail.html
    assert "Action needed" not in mail.subject


def test_a_claimed_domain_mail_says_why_and_how_to_take_the_name_back() -> None:
    event = transition(
        new_status=DomainStatus.DELETING, reason="claimed by another team"
    ).model_copy(update={"reason_code": ChangeReason.CLAIMED})
    mail = compose(event)
    assert mail.subject == "mail.acme.com was claimed by its owner"
    assert "claimed by another team" in mail.text
    assert "ownership TXT" in mail.text
    assert "What failed" not in mail.html
    assert "team_" not in mail.text  # the claimant is never named


def expiring(
    ends: datetime, *, at: datetime, domain: str = "mail.acme.com", reason: str = ""
) -> NotificationRequested:
    """The api's notice of a registration ending on `ends`, asked for at `at`."""
    return transition(
        new_status=DomainStatus.VERIFIED,
        domain=domain,
        reason=reason or f"The registration of acme.com expires on {ends.date().isoformat()}.",
    ).model_copy(
        update={
            "old_status": DomainStatus.VERIFIED,
            "reason_code": ChangeReason.REGISTRATION_EXPIRING,
            "registration_expires_at": ends,
            "occurred_at": at,
        }
    )


def test_an_expiry_mail_says_when_how_long_and_to_renew_at_the_registrar() -> None:
    ends = datetime(2027, 1, 10, 12, tzinfo=UTC)
    mail = compose(expiring(ends, at=datetime(2026, 12, 22, 9, tzinfo=UTC)))
    assert mail.subject == "Action needed: the registration of mail.acme.com expires on 2027-01-10"
    for part in (mail.text, mail.html):
        assert "mail.acme.com" in part
        assert "2027-01-10" in part
        assert "19 days left" in part
        assert "Renew the domain at your registrar" in part
        assert "The registration of acme.com expires on 2027-01-10." in part  # the watch's words
        assert "mdom_abc" in part
    # A verified domain's expiry is not its verification, nor a list of failing records.
    assert "is verified" not in mail.subject
    assert "What failed" not in mail.html


def test_an_expiry_mail_counts_the_last_day_and_one_already_past() -> None:
    ends = datetime(2027, 1, 10, 12, tzinfo=UTC)
    one = compose(expiring(ends, at=datetime(2027, 1, 9, 6, tzinfo=UTC)))
    assert "(1 day left)" in one.text
    today = compose(expiring(ends, at=datetime(2027, 1, 10, 6, tzinfo=UTC)))
    assert "(less than a day left)" in today.text
    gone = compose(expiring(ends, at=datetime(2027, 1, 12, tzinfo=UTC)))
    assert gone.subject == "Action needed: the registration of mail.acme.com has expired"
    assert "expired on 2027-01-10" in gone.text
    assert "left" not in gone.text


_hostile = st.text(alphabet="<>&\"'/=ab c;:\n\r\x00é", max_size=20)


@settings(max_examples=100, deadline=None)
@given(domain=_hostile, reason=_hostile)
def test_an_expiry_mail_escapes_what_came_from_outside(domain: str, reason: str) -> None:
    ends, at = datetime(2027, 1, 10, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    hostile = compose(expiring(ends, at=at, domain=domain, reason=reason))
    # The same mail with harmless text has the same tags (blanks stay blank).
    harmless = [("v" if clean(raw) else raw) for raw in (domain, reason)]
    plain = compose(expiring(ends, at=at, domain=harmless[0], reason=harmless[1]))
    assert _structure(hostile.html) == _structure(plain.html)
    assert html.escape(clean(domain, 253)) in hostile.html
    assert not re.search(r"[\r\n\x00]", hostile.subject)


def test_dashboard_link_appears_in_both_parts() -> None:
    mail = compose(transition(), dashboard_url="https://app.example.com/domains?x=1&y=2")
    assert "https://app.example.com/domains?x=1&y=2" in mail.text
    assert 'href="https://app.example.com/domains?x=1&amp;y=2"' in mail.html
    assert "href" not in compose(transition()).html


def test_clean_flattens_control_characters_and_bounds_length() -> None:
    assert clean("a\r\nSubject: x\tb") == "a Subject: x b"
    long = clean("x" * (MAX_VALUE_CHARS * 3))
    assert len(long) == MAX_VALUE_CHARS
    assert long.endswith("…")


def test_subject_cannot_carry_a_header() -> None:
    mail = compose(transition(domain="acme.com\r\nBcc: victim@example.com"))
    assert "\n" not in mail.subject
    assert "\r" not in mail.subject


# ---- hypothesis: outside text never becomes markup --------------------------------------

_piece = st.sampled_from(["<script>", "</td>", "&amp;", "<!--", "-->", '" onload="x'])
_outside = st.lists(
    st.one_of(_piece, st.text(alphabet="<>&\"'/=ab c;:\n\r\t\x00\u2028é", max_size=5)),
    max_size=8,
).map("".join) | st.text(max_size=30)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple[tuple[str, str | None], ...]]] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, tuple(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, tuple(attrs)))

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


def _structure(markup: str) -> tuple[list[tuple[str, tuple[tuple[str, str | None], ...]]], int]:
    parser = _Tags()
    parser.feed(markup)
    parser.close()
    return parser.tags, len(parser.comments)


def _with_text(
    fill: list[str], kinds: list[RecordKind], status: DomainStatus
) -> NotificationRequested:
    it = iter(fill)
    checks = [
        check(
            kind,
            name=next(it),
            expected=next(it),
            found=[next(it), next(it)],
            reason=next(it),
            message=next(it),
        )
        for kind in kinds
    ]
    return transition(
        new_status=status,
        domain=next(it),
        domain_id=next(it),
        reason=next(it),
        checks=checks,
        dkim=DkimStatus.FAILED,
    )


@settings(max_examples=200, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(list(RecordKind)), min_size=1, max_size=4),
    status=st.sampled_from([DomainStatus.FAILED, DomainStatus.PENDING, DomainStatus.VERIFIED]),
    data=st.data(),
)
def test_no_outside_string_appears_unescaped_in_html(
    kinds: list[RecordKind], status: DomainStatus, data: st.DataObject
) -> None:
    count = 6 * len(kinds) + 3
    fill = data.draw(st.lists(_outside, min_size=count, max_size=count))
    hostile = compose(_with_text(fill, kinds, status))
    # The same mail with harmless text has exactly the same tags and attributes: nothing
    # from outside opened, closed or decorated an element.
    # (A blank field may drop its paragraph, so blanks stay blank.)
    harmless = [f"v{i}" if clean(raw) else "" for i, raw in enumerate(fill)]
    plain = compose(_with_text(harmless, kinds, status))
    assert _structure(hostile.html) == _structure(plain.html)
    # What the owner must read is there, escaped (after control characters go).
    must_show = [fill[-3], fill[-2]]  # domain, domain id
    if status is not DomainStatus.VERIFIED:
        for i in range(len(kinds)):
            name, expected, found_a, found_b, _reason, message = fill[6 * i : 6 * i + 6]
            must_show += [name, expected, found_a, found_b, message]
    for raw in must_show:
        shown = clean(raw)
        assert html.escape(shown) in hostile.html
        assert shown in hostile.text
    assert not re.search(r"[\r\n\x00]", hostile.subject)


def test_a_precise_reason_replaces_the_general_advice_a_vague_one_keeps_it() -> None:
    precise, vague = problems_of(
        transition(
            checks=[
                check(RecordKind.SPF, reason="multiple_spf_records"),
                check(RecordKind.SPF, reason="record_missing"),
            ]
        )
    )
    assert sum("merge" in line for line in precise.advice) == 1
    assert any("No record was found" in line for line in vague.advice)
    assert any("Only one SPF record per hostname" in line for line in vague.advice)


def test_every_reason_the_verifier_gives_has_its_own_advice() -> None:
    from domainflow.notifier.messages import _REASON_ADVICE
    from domainflow.verifier.checks import Reason

    # The notifier may not import the verifier at run time; this test ties their vocabularies.
    given = {r.value for r in Reason} - {"resolver_unavailable"}  # inconclusive: never mailed
    assert given <= set(_REASON_ADVICE)
