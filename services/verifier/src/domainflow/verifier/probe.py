"""One domain's probe: the DNS checks and what SES says of its identity, combined into a verdict.

DNS goes through the DoH resolver (bounded concurrency); SES is asked in batches of up to 100
identities, three calls a batch (DKIM, identity verification, MAIL FROM), each call in a slot
of the account's shared SES budget (and again in a later slot when SES throttles it anyway).
An SES call that fails or times out leaves what it would have read unknown: DKIM unknown
(None) makes the verdict inconclusive, never failed (an outage of ours must not count against
a customer's domain); the other two unknown leave the identity's reading out (None), and the
api keeps what it last heard.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from domainflow.contracts import (
    DkimStatus,
    DnsRecords,
    DnsWarning,
    RecordCheck,
    SesIdentity,
    VerificationOutcome,
)
from domainflow.kit.logging import get_logger
from domainflow.kit.ses_budget import SesBudget

log = get_logger(__name__)

#: The four non-DKIM checks of one domain's records (dns_probe over the DoH resolver).
DnsCheck = Callable[[DnsRecords], Awaitable[list[RecordCheck]]]
#: The combiner: four checks and SES's DKIM status into one outcome (checks.py).
Combine = Callable[[Sequence[RecordCheck], DkimStatus | None], VerificationOutcome]
#: The DKIM CNAMEs as DNS shows them, asked only while SES says DKIM is not success.
DkimDiagnosis = Callable[[DnsRecords, DkimStatus], Awaitable[RecordCheck]]
#: What is already published that will conflict (asked on manual verifies only).
Preflight = Callable[[DnsRecords], Awaitable[list[DnsWarning]]]


@dataclass(frozen=True)
class DkimAttributes:
    """SES's DKIM answer for one identity: the status, and whether SES signs with it."""

    status: DkimStatus
    signing_enabled: bool


class SesSource(Protocol):
    """SES's three batched reads of identity attributes (`adapters/ses.py`)."""

    async def dkim(
        self, domains: Sequence[str], region: str, *, account: str | None = None
    ) -> dict[str, DkimAttributes]: ...

    async def verification(
        self, domains: Sequence[str], region: str, *, account: str | None = None
    ) -> dict[str, DkimStatus]: ...

    async def mail_from(
        self, domains: Sequence[str], region: str, *, account: str | None = None
    ) -> dict[str, DkimStatus]: ...


@dataclass(frozen=True)
class SesReading:
    """What one round of SES calls said of one domain."""

    dkim: DkimStatus | None  # None: SES could not be asked (inconclusive)
    identity: SesIdentity | None = None  # None: not every attribute could be read


_UNKNOWN = SesReading(None)


@dataclass(frozen=True)
class Verdict:
    checks: list[RecordCheck]
    ses_dkim_status: DkimStatus | None
    outcome: VerificationOutcome
    checked_at: datetime
    warnings: list[DnsWarning] = field(default_factory=list)
    ses_identity: SesIdentity | None = None


#: Where SES keeps an identity: its account (None: the default account) and region.
_Place = tuple[str | None, str]


class DomainProbe:
    def __init__(
        self,
        dns: DnsCheck,
        ses: SesSource,
        budget: SesBudget,
        combine: Combine,
        *,
        ses_batch: int = 100,
        ses_timeout: float = 10.0,
        dns_concurrency: int = 64,
        dkim_diagnosis: DkimDiagnosis | None = None,
        preflight: Preflight | None = None,
    ) -> None:
        self._dns = dns
        self._dkim_diagnosis = dkim_diagnosis
        self._preflight = preflight
        self._ses = ses
        self._budget = budget
        self._combine = combine
        self.ses_batch = min(ses_batch, 100)  # SES's own ceiling per call
        self._ses_timeout = ses_timeout
        self._dns_slots = asyncio.Semaphore(dns_concurrency)
        # On-demand SES lookups waiting for the next SES calls of their account and region,
        # and the task making those calls: lookups that arrive while it waits for its slot
        # share the calls.
        self._waiting: dict[_Place, list[tuple[str, asyncio.Future[SesReading]]]] = {}
        self._callers: dict[_Place, asyncio.Task[None]] = {}

    async def dns(self, records: DnsRecords) -> list[RecordCheck]:
        async with self._dns_slots:
            return await self._dns(records)

    async def ses_readings(
        self, domains: list[str], region: str, account: str | None = None
    ) -> dict[str, SesReading]:
        """What SES says of up to `ses_batch` domains of one SES account (None: the default)
        and region: three calls under that account's budget.

        A domain SES does not mention has nothing set up there (`not_started`); a DKIM call
        that fails leaves every domain of it unknown, a failure of either other call leaves
        their identity reading out.
        """
        if len(domains) > self.ses_batch:
            raise ValueError(f"at most {self.ses_batch} identities per SES call")
        due = await self._budget.for_account(account).reserve(region)
        return await self._ask_ses(domains, (account, region), due)

    async def _ask_ses(
        self, domains: list[str], where: _Place, due: float
    ) -> dict[str, SesReading]:
        """The three calls, the first in the slot the caller already waited for (due at loop
        time `due`), the others in slots of their own (later ones when throttled). Never
        raises."""
        account, region = where
        budget = self._budget.for_account(account)
        try:
            dkim = await budget.call(
                region,
                lambda: self._ses.dkim(domains, region, account=account),
                timeout=self._ses_timeout,
                reserved=due,
            )
        except Exception as error:  # any SES failure is inconclusive, never fatal
            log.warning(
                "ses.dkim_unavailable",
                account=account,
                region=region,
                count=len(domains),
                error=repr(error),
            )
            return dict.fromkeys(domains, _UNKNOWN)
        unread = DkimAttributes(DkimStatus.NOT_STARTED, signing_enabled=False)
        attributes = {d: dkim.get(d, unread) for d in domains}
        try:
            verification = await budget.call(
                region,
                lambda: self._ses.verification(domains, region, account=account),
                timeout=self._ses_timeout,
            )
            mail_from = await budget.call(
                region,
                lambda: self._ses.mail_from(domains, region, account=account),
                timeout=self._ses_timeout,
            )
        except Exception as error:  # DKIM is known: the verdict stands without the rest
            log.warning(
                "ses.identity_unavailable",
                account=account,
                region=region,
                count=len(domains),
                error=repr(error),
            )
            return {d: SesReading(attributes[d].status) for d in domains}
        read_at = datetime.now(UTC)
        return {
            d: SesReading(
                attributes[d].status,
                identity_of(
                    attributes[d],
                    verification.get(d, DkimStatus.NOT_STARTED),
                    mail_from.get(d, DkimStatus.NOT_STARTED),
                    read_at,
                ),
            )
            for d in domains
        }

    async def ses_reading(self, domain: str, region: str, account: str | None = None) -> SesReading:
        """What SES says of one domain for an on-demand verify, coalesced with its neighbours.

        Every SES call waits for a slot of the shared budget (one a second), and a round is
        three calls, so a team verifying fifty domains at once would wait minutes for its
        last answer. The lookups that gather while a round waits for its first slot ride
        along in it, up to `ses_batch`: fifty verifies cost one round of three calls.
        """
        answer: asyncio.Future[SesReading] = asyncio.get_running_loop().create_future()
        where = (account, region)
        self._waiting.setdefault(where, []).append((domain, answer))
        if where not in self._callers:
            self._callers[where] = asyncio.create_task(self._call_for_waiting(where))
        return await answer

    async def dkim_status(
        self, domain: str, region: str, account: str | None = None
    ) -> DkimStatus | None:
        """One domain's DKIM status (`ses_reading`'s), None when SES could not be asked."""
        return (await self.ses_reading(domain, region, account)).dkim

    async def _call_for_waiting(self, where: _Place) -> None:
        account, region = where
        try:
            while self._waiting.get(where):
                try:
                    due = await self._budget.for_account(account).reserve(region)
                except Exception as error:  # the budget's database: the handlers retry
                    for _, answer in self._waiting.pop(where, []):
                        if not answer.done():
                            answer.set_exception(error)
                    return
                queue = self._waiting[where]
                batch, queue[:] = queue[: self.ses_batch], queue[self.ses_batch :]
                found = await self._ask_ses(
                    sorted({d for d, _ in batch}), where, due
                )  # never raises
                for domain, answer in batch:
                    if not answer.done():
                        answer.set_result(found[domain])
        finally:
            del self._callers[where]

    def verdict(self, checks: list[RecordCheck], ses: SesReading) -> Verdict:
        return Verdict(
            checks,
            ses.dkim,
            self._combine(checks, ses.dkim),
            datetime.now(UTC),
            ses_identity=ses.identity,
        )

    async def judge(
        self, records: DnsRecords, checks: list[RecordCheck], ses: SesReading
    ) -> Verdict:
        """The verdict, with the DKIM CNAMEs as DNS shows them while SES says not success."""
        dkim = ses.dkim
        if self._dkim_diagnosis is not None and dkim is not None and dkim != DkimStatus.SUCCESS:
            async with self._dns_slots:
                checks = [*checks, await self._dkim_diagnosis(records, dkim)]
        return self.verdict(checks, ses)

    async def check(
        self, domain: str, region: str, records: DnsRecords, *, account: str | None = None
    ) -> Verdict:
        """Probe one domain now (a manual verify): DNS, SES and the pre-flight side by side."""
        checks, ses, warnings = await asyncio.gather(
            self.dns(records), self.ses_reading(domain, region, account), self._warnings(records)
        )
        verdict = await self.judge(records, checks, ses)
        return replace(verdict, warnings=warnings)

    async def _warnings(self, records: DnsRecords) -> list[DnsWarning]:
        if self._preflight is None:
            return []
        async with self._dns_slots:
            return await self._preflight(records)


def identity_of(
    dkim: DkimAttributes, verification: DkimStatus, mail_from: DkimStatus, read_at: datetime
) -> SesIdentity:
    """One identity's complete reading (pure): SES lets it send once it is verified."""
    return SesIdentity(
        dkim_signing_enabled=dkim.signing_enabled,
        verification_status=verification,
        mail_from_status=mail_from,
        verified_for_sending=verification is DkimStatus.SUCCESS,
        checked_at=read_at,
    )
