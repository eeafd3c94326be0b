"""One domain's probe: the four DNS checks and SES's DKIM status, combined into a verdict.

DNS goes through the DoH resolver (bounded concurrency); SES is asked for DKIM in batches of
up to 100 identities, each call in a slot of the account's shared SES budget (and again in a
later slot when SES throttles it anyway). An SES call that fails or times out leaves DKIM
unknown (None), which makes the verdict inconclusive, never failed: an outage of ours must
not count against a customer's domain.
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


class DkimSource(Protocol):
    async def fetch(self, domains: list[str], region: str) -> dict[str, DkimStatus]: ...


@dataclass(frozen=True)
class Verdict:
    checks: list[RecordCheck]
    ses_dkim_status: DkimStatus | None
    outcome: VerificationOutcome
    checked_at: datetime
    warnings: list[DnsWarning] = field(default_factory=list)


class DomainProbe:
    def __init__(
        self,
        dns: DnsCheck,
        dkim: DkimSource,
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
        self._dkim = dkim
        self._budget = budget
        self._combine = combine
        self.ses_batch = min(ses_batch, 100)  # SES's own ceiling per call
        self._ses_timeout = ses_timeout
        self._dns_slots = asyncio.Semaphore(dns_concurrency)
        # On-demand DKIM lookups waiting for the next SES call of their region, and the task
        # making those calls: lookups that arrive while it waits for its slot share the call.
        self._waiting: dict[str, list[tuple[str, asyncio.Future[DkimStatus | None]]]] = {}
        self._callers: dict[str, asyncio.Task[None]] = {}

    async def dns(self, records: DnsRecords) -> list[RecordCheck]:
        async with self._dns_slots:
            return await self._dns(records)

    async def dkim_statuses(self, domains: list[str], region: str) -> dict[str, DkimStatus | None]:
        """SES's DKIM status of up to `ses_batch` domains, one call under the shared budget.

        A domain SES does not mention has no DKIM set up there (`not_started`); a call that
        fails leaves every domain of it unknown (None).
        """
        if len(domains) > self.ses_batch:
            raise ValueError(f"at most {self.ses_batch} identities per SES call")
        await self._budget.acquire(region)
        return await self._ask_ses(domains, region)

    async def _ask_ses(self, domains: list[str], region: str) -> dict[str, DkimStatus | None]:
        """One call in the slot the caller already waited for (later slots if throttled)."""
        try:
            found = await self._budget.call(
                region,
                lambda: self._dkim.fetch(domains, region),
                timeout=self._ses_timeout,
                reserved=True,
            )
        except Exception as error:  # any SES failure is inconclusive, never fatal
            log.warning(
                "ses.dkim_unavailable", region=region, count=len(domains), error=repr(error)
            )
            return dict.fromkeys(domains)
        return {d: found.get(d, DkimStatus.NOT_STARTED) for d in domains}

    async def dkim_status(self, domain: str, region: str) -> DkimStatus | None:
        """One domain's DKIM status for an on-demand verify, coalesced with its neighbours.

        Every SES call waits for a slot of the shared budget (one a second), so a team
        verifying fifty domains at once would wait fifty seconds for its last answer. The
        lookups that gather while a call waits for its slot ride along in it, up to
        `ses_batch`: fifty verifies cost one call.
        """
        answer: asyncio.Future[DkimStatus | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(region, []).append((domain, answer))
        if region not in self._callers:
            self._callers[region] = asyncio.create_task(self._call_for_waiting(region))
        return await answer

    async def _call_for_waiting(self, region: str) -> None:
        try:
            while self._waiting.get(region):
                try:
                    await self._budget.acquire(region)
                except Exception as error:  # the budget's database: the handlers retry
                    for _, answer in self._waiting.pop(region, []):
                        if not answer.done():
                            answer.set_exception(error)
                    return
                queue = self._waiting[region]
                batch, queue[:] = queue[: self.ses_batch], queue[self.ses_batch :]
                found = await self._ask_ses(sorted({d for d, _ in batch}), region)  # never raises
                for domain, answer in batch:
                    if not answer.done():
                        answer.set_result(found[domain])
        finally:
            del self._callers[region]

    def verdict(self, checks: list[RecordCheck], dkim: DkimStatus | None) -> Verdict:
        return Verdict(checks, dkim, self._combine(checks, dkim), datetime.now(UTC))

    async def judge(
        self, records: DnsRecords, checks: list[RecordCheck], dkim: DkimStatus | None
    ) -> Verdict:
        """The verdict, with the DKIM CNAMEs as DNS shows them while SES says not success."""
        if self._dkim_diagnosis is not None and dkim is not None and dkim != DkimStatus.SUCCESS:
            async with self._dns_slots:
                checks = [*checks, await self._dkim_diagnosis(records, dkim)]
        return self.verdict(checks, dkim)

    async def check(self, domain: str, region: str, records: DnsRecords) -> Verdict:
        """Probe one domain now (a manual verify): DNS, SES and the pre-flight side by side."""
        checks, dkim, warnings = await asyncio.gather(
            self.dns(records), self.dkim_status(domain, region), self._warnings(records)
        )
        verdict = await self.judge(records, checks, dkim)
        return replace(verdict, warnings=warnings)

    async def _warnings(self, records: DnsRecords) -> list[DnsWarning]:
        if self._preflight is None:
            return []
        async with self._dns_slots:
            return await self._preflight(records)
