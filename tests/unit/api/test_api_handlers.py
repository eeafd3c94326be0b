"""The api's consumers over the in-memory unit of work: each answer moves the domain once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from domainflow.api.domain.events import records_for
from domainflow.api.domain.keys import Principal
from domainflow.api.domains.schemas import domain_view, verification_view
from domainflow.api.domains.service import AddDomain, DomainService
from domainflow.api.handlers import ApiHandlers
from domainflow.api.settings import ApiSettings, WriteLimitSettings
from domainflow.contracts import (
    ChangeReason,
    ChangeTrigger,
    CheckOutcome,
    DkimStatus,
    DnsWarning,
    DomainChecksFailed,
    DomainDeleted,
    DomainDeprovisioned,
    DomainProvisioned,
    DomainStatus,
    DomainStatusChanged,
    DomainStatusChangedV1,
    NotificationRequested,
    ProvisioningRolledBack,
    ReceivingRequested,
    RecordCheck,
    RecordKind,
    SesIdentity,
    VerificationCompleted,
    VerificationOutcome,
    VerificationTrigger,
)
from tests.unit.api.fakes import FakeChanges, FakeUnitOfWork

ACME = Principal(1, "team_acme", "key_acme", ("*",))
SETTINGS = ApiSettings(write_limit=WriteLimitSettings(domain_write_rate=0.0))
TOKENS = ["a" * 32, "b" * 32, "c" * 32]


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def handlers(uow: FakeUnitOfWork) -> ApiHandlers:
    return ApiHandlers(uow, SETTINGS)


async def added(uow: FakeUnitOfWork, name: str = "acme.com") -> str:
    async with uow.transaction() as work:
        team = await work.teams.add("team_acme", "acme")
        await work.teams.set_member(team, "owner@acme.com", "owner")
    domains = DomainService(uow, SETTINGS, FakeChanges())
    return (await domains.add(ACME, AddDomain(name), "req_add")).domain.public_id


def provisioned(public_id: str, name: str = "acme.com") -> DomainProvisioned:
    return DomainProvisioned(
        correlation_id="req_add",
        team_id="team_acme",
        domain_id=public_id,
        domain=name,
        region="us-east-1",
        dkim_tokens=TOKENS,
    )


def verdict(
    public_id: str,
    outcome: VerificationOutcome,
    *,
    answers: uuid.UUID | None = None,
    trigger: VerificationTrigger = VerificationTrigger.SCHEDULED,
    identity: SesIdentity | None = None,
) -> VerificationCompleted:
    check = CheckOutcome.PASS if outcome is VerificationOutcome.PASSED else CheckOutcome.FAIL
    return VerificationCompleted(
        correlation_id="req_probe",
        causation_id=answers,
        team_id="team_acme",
        domain_id=public_id,
        domain="acme.com",
        trigger=trigger,
        outcome=outcome,
        ses_dkim_status=DkimStatus.SUCCESS,
        checks=[
            RecordCheck(record=k, outcome=check, name="acme.com", expected="x") for k in RecordKind
        ],
        checked_at=datetime.now(UTC),
        ses_identity=identity,
    )


def status_changes(uow: FakeUnitOfWork) -> list[tuple[str | None, str]]:
    return [
        (e.old_status.value if e.old_status else None, e.new_status.value)
        for e in uow.state.published
        if isinstance(e, DomainStatusChanged)
    ]


async def test_provisioned_makes_the_domain_pending_with_its_tokens_once(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    public_id = await added(uow)
    event = provisioned(public_id)
    await handlers.on_provisioned(event)
    await handlers.on_provisioned(event)  # redelivered: already applied
    domain = uow.state.domains[public_id]
    assert (domain.status, domain.dkim_tokens) == (DomainStatus.PENDING, tuple(TOKENS))
    assert status_changes(uow) == [("provisioning", "pending")]
    changed = next(e for e in uow.state.published if isinstance(e, DomainStatusChanged))
    assert "owner_emails" not in changed.model_dump()  # personal data goes to no subscriber
    assert changed.records is not None
    assert changed.records.dkim[0].name == f"{'a' * 32}._domainkey.acme.com"


async def test_an_event_for_an_unknown_domain_changes_nothing(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    await handlers.on_provisioned(provisioned("mdom_unknown"))
    assert uow.state.published == []


async def test_a_rollback_deletes_the_domain_with_its_cause(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    public_id = await added(uow)
    await handlers.on_rolled_back(
        ProvisioningRolledBack(
            correlation_id="req_add",
            team_id="team_acme",
            domain_id=public_id,
            domain="acme.com",
            failed_step="ses_identity",
            reason="refused",
        )
    )
    domain = uow.state.domains[public_id]
    assert domain.status is DomainStatus.DELETED
    assert domain.failure_reason == "ses_identity: refused"
    assert domain.deleted_at is not None
    # Subscribers hear that it is gone, and why: a rollback, not a deletion.
    [gone] = [e for e in uow.state.published if isinstance(e, DomainDeleted)]
    assert (gone.reason_code, gone.trigger) == (
        ChangeReason.PROVISIONING_ROLLED_BACK,
        ChangeTrigger.REQUEST,
    )
    assert gone.snapshot is not None
    assert gone.snapshot.state is DomainStatus.DELETED


async def test_a_passed_probe_verifies_and_releases_the_waiting_request(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    public_id = await added(uow)
    await handlers.on_provisioned(provisioned(public_id))
    asked = uuid.uuid4()
    uow.state.domains[public_id].await_verification(asked, datetime.now(UTC))
    # A scheduled probe landing meanwhile does not release the request...
    await handlers.on_verification_completed(verdict(public_id, VerificationOutcome.FAILED))
    assert uow.state.domains[public_id].verify_event_id == asked
    # ...its own answer does.
    await handlers.on_verification_completed(
        verdict(
            public_id, VerificationOutcome.PASSED, answers=asked, trigger=VerificationTrigger.MANUAL
        )
    )
    domain = uow.state.domains[public_id]
    assert (domain.status, domain.verify_event_id) == (DomainStatus.VERIFIED, None)
    assert domain.verified_at is not None
    assert domain.last_outcome is VerificationOutcome.PASSED
    assert status_changes(uow)[-1] == ("pending", "verified")
    lines = [e.happening for _, e in uow.state.timeline]
    assert lines.count("verification_completed") == 2  # the failing probe, then the asked one


def identity(at: datetime, mail_from: DkimStatus = DkimStatus.SUCCESS) -> SesIdentity:
    return SesIdentity(
        dkim_signing_enabled=True,
        verification_status=DkimStatus.SUCCESS,
        mail_from_status=mail_from,
        verified_for_sending=True,
        checked_at=at,
    )


async def test_ses_identity_fields_are_null_until_read_then_kept_newest_first(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    public_id = await added(uow)
    await handlers.on_provisioned(provisioned(public_id))
    domain = uow.state.domains[public_id]
    unread = (
        domain.ses_dkim_signing_enabled,
        domain.ses_identity_verification_status,
        domain.ses_mail_from_status,
        domain.ses_verified_for_sending,
        domain.ses_identity_checked_at,
    )
    assert unread == (None, None, None, None, None)

    later = datetime.now(UTC)
    earlier = datetime(2026, 1, 1, tzinfo=UTC)
    await handlers.on_verification_completed(
        verdict(public_id, VerificationOutcome.FAILED, identity=identity(later))
    )
    domain = uow.state.domains[public_id]
    assert domain.ses_dkim_signing_enabled is True
    assert domain.ses_identity_verification_status == "success"
    assert domain.ses_mail_from_status is DkimStatus.SUCCESS
    assert domain.ses_verified_for_sending is True
    assert domain.ses_identity_checked_at == later
    # An older reading answering late, and a probe that could not read it all, keep it.
    await handlers.on_verification_completed(
        verdict(
            public_id,
            VerificationOutcome.FAILED,
            identity=identity(earlier, mail_from=DkimStatus.PENDING),
        )
    )
    await handlers.on_verification_completed(verdict(public_id, VerificationOutcome.INCONCLUSIVE))
    domain = uow.state.domains[public_id]
    assert (domain.ses_mail_from_status, domain.ses_identity_checked_at) == (
        DkimStatus.SUCCESS,
        later,
    )


async def test_an_inconclusive_probe_changes_no_status(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    public_id = await added(uow)
    await handlers.on_provisioned(provisioned(public_id))
    await handlers.on_verification_completed(verdict(public_id, VerificationOutcome.INCONCLUSIVE))
    assert uow.state.domains[public_id].status is DomainStatus.PENDING
    assert status_changes(uow) == [("provisioning", "pending")]


async def test_a_probe_of_a_deleting_domain_is_ignored_but_releases_its_request(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    public_id = await added(uow)
    await handlers.on_provisioned(provisioned(public_id))
    asked = uuid.uuid4()
    domain = uow.state.domains[public_id]
    domain.await_verification(asked, datetime.now(UTC))
    domain.status = DomainStatus.DELETING
    await handlers.on_verification_completed(
        verdict(public_id, VerificationOutcome.PASSED, answers=asked)
    )
    domain = uow.state.domains[public_id]
    assert (domain.status, domain.verify_event_id) == (DomainStatus.DELETING, None)
    assert domain.last_outcome is None  # the verdict itself is not recorded


async def test_deprovisioned_ends_a_deletion_and_says_so(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    public_id = await added(uow)
    await handlers.on_provisioned(provisioned(public_id))
    uow.state.domains[public_id].status = DomainStatus.DELETING
    await handlers.on_deprovisioned(
        DomainDeprovisioned(
            correlation_id="req_del", team_id="team_acme", domain_id=public_id, domain="acme.com"
        )
    )
    assert uow.state.domains[public_id].status is DomainStatus.DELETED
    deleted = [e for e in uow.state.published if isinstance(e, DomainDeleted)]
    assert [e.domain_id for e in deleted] == [public_id]
    changed = [e for e in uow.state.published if isinstance(e, DomainStatusChanged)][-1]
    assert changed.records is None  # a deleted domain has no records to place


async def test_a_redelivered_failure_counts_once(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    """Two deliveries of one failing probe of a verified domain would fail it (two failures in
    a row) and email its owners; the inbox makes the second a no-op."""
    public_id = await added(uow)
    await handlers.on_provisioned(provisioned(public_id))
    await handlers.on_verification_completed(verdict(public_id, VerificationOutcome.PASSED))
    failing = verdict(public_id, VerificationOutcome.FAILED)
    await handlers.on_verification_completed(failing)
    await handlers.on_verification_completed(failing)
    domain = uow.state.domains[public_id]
    assert (domain.status, domain.consecutive_failures) == (DomainStatus.PENDING, 1)
    assert status_changes(uow)[-1] == ("verified", "pending")


async def test_public_events_are_numbered_per_domain_and_say_why(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    """A subscriber keeps the highest sequence it saw: each public event of a domain takes the
    next number, and says what set it off."""
    public_id = await added(uow)
    await handlers.on_provisioned(provisioned(public_id))
    await handlers.on_verification_completed(verdict(public_id, VerificationOutcome.PASSED))
    await handlers.on_verification_completed(verdict(public_id, VerificationOutcome.FAILED))
    numbered = [
        (e.TYPE, e.version, getattr(e, "sequence", None), getattr(e, "reason_code", None))
        for e in uow.state.published
        if getattr(e, "sequence", None) is not None
    ]
    # Version 1 of each change beside version 2 for one release, with the same number.
    assert numbered == [
        ("domain.created", 1, 1, ChangeReason.CREATED),
        ("domain.status_changed", 2, 2, ChangeReason.PROVISIONED),
        ("domain.status_changed", 1, 2, ChangeReason.PROVISIONED),
        ("domain.status_changed", 2, 3, ChangeReason.VERIFICATION_PASSED),
        ("domain.status_changed", 1, 3, ChangeReason.VERIFICATION_PASSED),
        ("domain.status_changed", 2, 4, ChangeReason.RECORDS_BROKE),
        ("domain.status_changed", 1, 4, ChangeReason.RECORDS_BROKE),
    ]
    last = [e for e in uow.state.published if isinstance(e, DomainStatusChanged)][-1]
    assert last.trigger is ChangeTrigger.SCHEDULE
    assert last.snapshot is not None
    assert last.snapshot.verification_status == "pending"
    assert uow.state.domains[public_id].sequence == 4


async def test_owners_addresses_go_only_to_the_notifier_and_only_when_they_hear_of_it(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    public_id = await added(uow)
    await handlers.on_provisioned(provisioned(public_id))  # owners are not told of pending
    assert not [e for e in uow.state.published if isinstance(e, NotificationRequested)]
    await handlers.on_verification_completed(verdict(public_id, VerificationOutcome.PASSED))
    (asked,) = [e for e in uow.state.published if isinstance(e, NotificationRequested)]
    changed = [e for e in uow.state.published if isinstance(e, DomainStatusChanged)][-1]
    assert asked.owner_emails == ["owner@acme.com"]
    assert asked.transition_event_id == changed.event_id
    assert (asked.old_status, asked.new_status) == (DomainStatus.PENDING, DomainStatus.VERIFIED)
    for public in uow.state.published:
        if isinstance(public, DomainStatusChangedV1):
            assert public.owner_emails == []  # version 1 keeps the field, empty
        if not isinstance(public, NotificationRequested):
            assert "owner@acme.com" not in public.model_dump_json()


def _probe(public_id: str, failing: dict[RecordKind, str]) -> VerificationCompleted:
    return VerificationCompleted(
        correlation_id="req_probe",
        team_id="team_acme",
        domain_id=public_id,
        domain="acme.com",
        trigger=VerificationTrigger.SCHEDULED,
        outcome=VerificationOutcome.FAILED,
        ses_dkim_status=DkimStatus.SUCCESS,
        checks=[
            RecordCheck(
                record=k,
                outcome=CheckOutcome.FAIL if k in failing else CheckOutcome.PASS,
                name="acme.com",
                expected="x",
                reason=failing.get(k),
            )
            for k in RecordKind
        ],
        checked_at=datetime.now(UTC),
    )


async def test_failing_checks_without_a_status_change_are_published_when_they_change(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    public_id = await added(uow)
    await handlers.on_provisioned(provisioned(public_id))
    spf_missing = {RecordKind.SPF: "record_missing"}
    await handlers.on_verification_completed(_probe(public_id, spf_missing))
    await handlers.on_verification_completed(_probe(public_id, spf_missing))  # no news
    await handlers.on_verification_completed(
        _probe(public_id, {**spf_missing, RecordKind.DMARC: "record_missing"})
    )
    await handlers.on_verification_completed(
        _probe(public_id, {RecordKind.SPF: "value_mismatch"})  # same record, new reason
    )
    reported = [e for e in uow.state.published if isinstance(e, DomainChecksFailed)]
    assert [sorted((c.record.value, c.reason) for c in e.failing_checks) for e in reported] == [
        [("spf", "record_missing")],
        [("dmarc", "record_missing"), ("spf", "record_missing")],
        [("spf", "value_mismatch")],
    ]
    assert {e.status for e in reported} == {DomainStatus.PENDING}
    assert {e.trigger for e in reported} == {ChangeTrigger.SCHEDULE}
    # Numbered with the domain's other public events, and the domain stays pending.
    assert [e.sequence for e in reported] == [3, 4, 5]
    assert uow.state.domains[public_id].sequence == 5
    assert status_changes(uow) == [("provisioning", "pending")]


def _warning(code: str) -> DnsWarning:
    return DnsWarning(code=code, name="acme.com", found=["x"], message=f"{code}.")


async def test_check_details_and_each_kind_of_warning_are_kept_and_shown(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    public_id = await added(uow)
    await handlers.on_provisioned(provisioned(public_id))
    spf = RecordCheck(
        record=RecordKind.SPF,
        outcome=CheckOutcome.FAIL,
        name="acme.com",
        expected="v=spf1 include:amazonses.com ~all",
        found=["v=spf1 include:other.example ~all"],
        reason="spf_include_missing",
        details={"merged_record": "v=spf1 include:amazonses.com include:other.example ~all"},
    )

    def probe(trigger: VerificationTrigger, *warnings: DnsWarning) -> VerificationCompleted:
        return VerificationCompleted(
            correlation_id="req_probe",
            team_id="team_acme",
            domain_id=public_id,
            domain="acme.com",
            trigger=trigger,
            outcome=VerificationOutcome.FAILED,
            ses_dkim_status=DkimStatus.SUCCESS,
            checks=[spf],
            checked_at=datetime.now(UTC),
            warnings=list(warnings),
        )

    def shown() -> list[str]:
        domain = uow.state.domains[public_id]
        assert [
            w.code
            for w in domain_view(domain, records_for(domain, SETTINGS.records.rules)).warnings
        ] == [w.code for w in verification_view(domain).warnings]
        return [w.code for w in verification_view(domain).warnings]

    await handlers.on_verification_completed(
        probe(VerificationTrigger.MANUAL, _warning("existing_spf"))
    )
    assert shown() == ["existing_spf"]
    # The schedule's silence about pre-flight conflicts keeps them; its own findings join.
    await handlers.on_verification_completed(
        probe(VerificationTrigger.SCHEDULED, _warning("registration_expiring"))
    )
    assert shown() == ["existing_spf", "registration_expiring"]
    await handlers.on_verification_completed(probe(VerificationTrigger.SCHEDULED))
    assert shown() == ["existing_spf"]
    await handlers.on_verification_completed(probe(VerificationTrigger.MANUAL))
    assert shown() == []

    (detail,) = verification_view(uow.state.domains[public_id]).details
    assert detail.details == {
        "merged_record": "v=spf1 include:amazonses.com include:other.example ~all"
    }


def _expiring(ends: datetime, zone: str = "acme.com") -> DnsWarning:
    """The registration watch's warning, as the verifier's registration.py words it."""
    return DnsWarning(
        code="registration_expiring",
        name=zone,
        found=[ends.isoformat()],
        message=f"The registration of {zone} expires on {ends.date().isoformat()}.",
    )


def _watched(
    public_id: str,
    *warnings: DnsWarning,
    trigger: VerificationTrigger = VerificationTrigger.SCHEDULED,
) -> VerificationCompleted:
    return verdict(public_id, VerificationOutcome.PASSED, trigger=trigger).model_copy(
        update={"warnings": list(warnings), "event_id": uuid.uuid4()}
    )


def expiry_notices(uow: FakeUnitOfWork) -> list[NotificationRequested]:
    return [
        e
        for e in uow.state.published
        if isinstance(e, NotificationRequested)
        and e.reason_code is ChangeReason.REGISTRATION_EXPIRING
    ]


async def test_owners_hear_of_a_registration_expiring_once_per_expiry_date(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    public_id = await added(uow)
    await handlers.on_provisioned(provisioned(public_id))
    await handlers.on_verification_completed(verdict(public_id, VerificationOutcome.PASSED))
    sequence = uow.state.domains[public_id].sequence
    soon = datetime(2027, 1, 10, 12, tzinfo=UTC)
    later = datetime(2028, 1, 10, 12, tzinfo=UTC)

    first = _watched(public_id, _expiring(soon))
    await handlers.on_verification_completed(first)
    (notice,) = expiry_notices(uow)
    assert notice.owner_emails == ["owner@acme.com"]
    assert notice.registration_expires_at == soon
    assert notice.old_status is notice.new_status is DomainStatus.VERIFIED
    assert notice.causation_id == first.event_id
    assert "2027-01-10" in notice.reason

    await handlers.on_verification_completed(first)  # redelivered
    await handlers.on_verification_completed(_watched(public_id, _expiring(soon)))  # 6 h later
    manual = _watched(public_id, trigger=VerificationTrigger.MANUAL)  # keeps the watch's
    await handlers.on_verification_completed(manual)
    assert len(expiry_notices(uow)) == 1

    # The watch blinked (no warning this time), then reports the same date again: asked
    # again, under the same id, which the notifier's never-twice log already holds.
    await handlers.on_verification_completed(_watched(public_id))
    await handlers.on_verification_completed(_watched(public_id, _expiring(soon)))
    assert [n.transition_event_id for n in expiry_notices(uow)] == [notice.transition_event_id] * 2

    # Renewed, and coming close again: a new date is a new notice.
    await handlers.on_verification_completed(_watched(public_id, _expiring(later)))
    renewed = expiry_notices(uow)[-1]
    assert len(expiry_notices(uow)) == 3
    assert renewed.registration_expires_at == later
    assert renewed.transition_event_id != notice.transition_event_id

    # Not a public change: no status moved and no subscriber sees the owners' addresses.
    assert uow.state.domains[public_id].status is DomainStatus.VERIFIED
    assert uow.state.domains[public_id].sequence == sequence
    assert status_changes(uow) == [("provisioning", "pending"), ("pending", "verified")]


async def test_a_pending_domain_failing_its_checks_hears_of_its_expiry_too(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    public_id = await added(uow)
    await handlers.on_provisioned(provisioned(public_id))
    ends = datetime(2027, 1, 10, tzinfo=UTC)
    failing = _probe(public_id, {RecordKind.SPF: "record_missing"})
    await handlers.on_verification_completed(
        failing.model_copy(update={"warnings": [_expiring(ends)]})
    )
    (notice,) = expiry_notices(uow)
    assert notice.new_status is DomainStatus.PENDING
    assert notice.owner_emails == ["owner@acme.com"]


async def test_a_warning_that_names_no_date_is_shown_but_mailed_to_nobody(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    public_id = await added(uow)
    await handlers.on_provisioned(provisioned(public_id))
    await handlers.on_verification_completed(
        _watched(public_id, _warning("registration_expiring"))  # found: ["x"]
    )
    assert [w.code for w in uow.state.domains[public_id].last_warnings] == ["registration_expiring"]
    assert expiry_notices(uow) == []


# --- not live before proven ----------------------------------------------------------------


def probe(
    public_id: str, outcome: VerificationOutcome, *, txt: CheckOutcome
) -> VerificationCompleted:
    """A scheduled verification whose ownership TXT check came out `txt`."""
    event = verdict(public_id, outcome)
    checks = [
        c.model_copy(update={"outcome": txt}) if c.record is RecordKind.VERIFICATION_TXT else c
        for c in event.checks
    ]
    return event.model_copy(update={"checks": checks, "event_id": uuid.uuid4()})


def asked_to_receive(uow: FakeUnitOfWork) -> list[ReceivingRequested]:
    return [e for e in uow.state.published if isinstance(e, ReceivingRequested)]


async def test_a_pending_domain_goes_live_once_when_its_ownership_txt_is_first_seen(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    public_id = await added(uow)
    await handlers.on_provisioned(provisioned(public_id))
    await handlers.on_verification_completed(
        probe(public_id, VerificationOutcome.FAILED, txt=CheckOutcome.FAIL)
    )
    assert asked_to_receive(uow) == []
    assert uow.state.domains[public_id].ownership_proven_at is None

    # Seen while other records still fail: the name is shown to be the team's.
    seen = probe(public_id, VerificationOutcome.FAILED, txt=CheckOutcome.PASS)
    await handlers.on_verification_completed(seen)
    await handlers.on_verification_completed(seen)  # redelivered: applied once
    (live,) = asked_to_receive(uow)
    assert (live.domain_id, live.domain, live.causation_id) == (
        public_id,
        "acme.com",
        seen.event_id,
    )
    domain = uow.state.domains[public_id]
    assert domain.ownership_proven_at == seen.checked_at
    assert domain.status is DomainStatus.PENDING
    assert "ownership_proven" in [e.happening for pk, e in uow.state.timeline if pk == domain.pk]

    # Later probes, passing or not, never ask again.
    await handlers.on_verification_completed(
        probe(public_id, VerificationOutcome.PASSED, txt=CheckOutcome.PASS)
    )
    await handlers.on_verification_completed(
        probe(public_id, VerificationOutcome.FAILED, txt=CheckOutcome.FAIL)
    )
    assert len(asked_to_receive(uow)) == 1


async def test_a_send_only_domain_is_proven_but_never_put_on_the_mail_server(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    async with uow.transaction() as work:
        await work.teams.add("team_acme", "acme")
    domains = DomainService(uow, SETTINGS, FakeChanges())
    public_id = (
        await domains.add(ACME, AddDomain("acme.com", mode="send_only"), "req_add")
    ).domain.public_id
    await handlers.on_provisioned(provisioned(public_id))
    await handlers.on_verification_completed(
        probe(public_id, VerificationOutcome.PASSED, txt=CheckOutcome.PASS)
    )
    assert asked_to_receive(uow) == []
    assert uow.state.domains[public_id].ownership_proven_at is not None


async def test_a_verification_of_a_domain_being_deleted_proves_nothing(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    public_id = await added(uow)
    await handlers.on_provisioned(provisioned(public_id))
    uow.state.domains[public_id].status = DomainStatus.DELETING
    await handlers.on_verification_completed(
        probe(public_id, VerificationOutcome.PASSED, txt=CheckOutcome.PASS)
    )
    assert asked_to_receive(uow) == []
    assert uow.state.domains[public_id].ownership_proven_at is None


async def test_what_the_registration_watch_finds_goes_on_the_timeline_once(
    handlers: ApiHandlers, uow: FakeUnitOfWork
) -> None:
    public_id = await added(uow)
    await handlers.on_provisioned(provisioned(public_id))
    moved = DnsWarning(
        code="nameservers_changed",
        name="acme.com",
        found=["ns1.other-provider.example"],
        message="The nameservers of acme.com changed to ns1.other-provider.example.",
    )

    def watched(*warnings: DnsWarning) -> VerificationCompleted:
        event = verdict(public_id, VerificationOutcome.PASSED)
        return event.model_copy(
            update={
                "event_id": uuid.uuid4(),
                "trigger": VerificationTrigger.SCHEDULED,
                "warnings": list(warnings),
            }
        )

    def watch_lines() -> list[str]:
        domain = uow.state.domains[public_id]
        return [
            e.reason
            for pk, e in uow.state.timeline
            if pk == domain.pk and e.happening == "registration_watch"
        ]

    await handlers.on_verification_completed(watched(moved))
    assert watch_lines() == [moved.message]
    await handlers.on_verification_completed(watched(moved))  # the same finding: no news
    assert watch_lines() == [moved.message]
    back = moved.model_copy(update={"found": ["ns1.acme.example"], "message": "Moved back."})
    await handlers.on_verification_completed(watched(back))
    assert watch_lines() == [moved.message, "Moved back."]
