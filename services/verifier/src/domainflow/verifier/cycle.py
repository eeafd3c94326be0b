"""The background re-verification: every pending and verified domain, once per interval.

Every tick a replica claims due rows in batches (`FOR UPDATE SKIP LOCKED` with a lease token),
asks SES of the identities one region-chunk of up to 100 at a time under the shared SES budget
(three calls a chunk: DKIM, verification, MAIL FROM; never one per domain), probes
DNS for the whole batch meanwhile, and for each domain commits in ONE transaction: the history
row, `VerificationCompleted(trigger=scheduled)` in the outbox, the next due time, and the
released claim. Only a holder of the current claim may commit, so a domain is checked once a
cycle however many replicas run; a killed replica's claims lapse and the rows it never
finished are picked up by whoever ticks next (resume, not restart). Memory is bounded by the
claim size and the claims in flight, never by how many domains there are.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domainflow.contracts import (
    DnsWarning,
    RecordCheck,
    VerificationCompleted,
    VerificationTrigger,
)
from domainflow.kit import outbox, tracing
from domainflow.kit.database import Database
from domainflow.kit.logging import get_logger
from domainflow.verifier.adapters import repository
from domainflow.verifier.probe import DomainProbe, SesReading
from domainflow.verifier.schedule import DueDomain, chunks_by_place, claim_order, next_due
from domainflow.verifier.watch import RegistrationWatch

log = get_logger(__name__)

#: Where a pass reads "now" to decide what is due. The database's clock by default: one clock
#: for every replica, whatever their hosts' clocks say. Tests pass one they move themselves.
Clock = Callable[[], Awaitable[datetime]]


@dataclass
class CycleReport:
    """What one pass found: enough for logs and the benchmark, nothing per domain."""

    cycle_id: str = field(default_factory=lambda: f"reverify_{uuid.uuid4().hex[:12]}")
    claimed: int = 0
    checked: int = 0
    lost: int = 0  # claim lapsed or domain removed while probing: someone else's now
    broken: int = 0  # the probe itself raised: released, due again next tick
    outcomes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class ReverifyCycle:
    def __init__(
        self,
        db: Database,
        probe: DomainProbe,
        *,
        interval: timedelta,
        tick: float,
        batch: int,
        lease: float,
        parallel_claims: int = 2,
        watch: RegistrationWatch | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._db = db
        self._clock = clock or self._database_now
        self._probe = probe
        self._interval = interval
        self._tick = tick
        self._batch = batch
        self._lease = lease
        self._parallel = max(1, parallel_claims)
        self._watch = watch

    async def run(self) -> None:
        """Tick until cancelled: a failing pass is logged and the next tick tries again."""
        while True:
            started = time.monotonic()
            try:
                report = await self.run_once()
                if report.claimed:
                    log.info(
                        "reverify.cycle_done",
                        cycle_id=report.cycle_id,
                        claimed=report.claimed,
                        checked=report.checked,
                        lost=report.lost,
                        broken=report.broken,
                        outcomes=report.outcomes,
                        seconds=round(report.seconds, 3),
                    )
            except Exception:  # the database or SES blinked; unfinished claims lapse
                log.exception("reverify.cycle_failed")
            await asyncio.sleep(max(0.0, self._tick - (time.monotonic() - started)))

    async def run_once(self) -> CycleReport:
        """Check every row due when the pass started that no other replica holds."""
        report = CycleReport()
        started = time.monotonic()
        # Rows that fall due during the pass wait for the next one: a pass ends, and no
        # domain is checked twice in it.
        due_by = await self._clock()

        async def worker(account: str) -> None:
            while True:
                token = uuid.uuid4()
                batch = await repository.claim_due(
                    self._db,
                    due_by=due_by,
                    limit=self._batch,
                    lease_seconds=self._lease,
                    token=token,
                    account=account,
                )
                if not batch:
                    return
                report.claimed += len(batch)
                # A trace of its own: the checks, and whatever status changes they cause.
                with tracing.continuing({}, "reverify batch", {"domainflow.domains": len(batch)}):
                    await self._check_batch(batch, token, report)

        # Each SES account has its own quota: its domains are claimed by workers of its own,
        # every account in parallel, so the pass takes as long as the fullest account's.
        accounts = await repository.due_accounts(self._db, due_by)
        await asyncio.gather(*(worker(a) for a in claim_order(accounts, self._parallel)))
        report.seconds = time.monotonic() - started
        return report

    async def _database_now(self) -> datetime:
        return await repository.database_now(self._db)

    async def _check_batch(
        self, batch: list[DueDomain], token: uuid.UUID, report: CycleReport
    ) -> None:
        # DNS for the whole batch starts at once (bounded by the probe); SES answers a chunk
        # at a time as each account-region's budget allows, every account-region in parallel
        # (each has its own quota), and each domain commits as soon as it has both.
        dns = {d.domain_id: asyncio.create_task(self._probe.dns(d.records)) for d in batch}
        watched = asyncio.create_task(self._watched([d.domain for d in batch]))
        finishing: list[asyncio.Task[None]] = []

        async def ask_ses(account: str | None, region: str, chunks: list[list[DueDomain]]) -> None:
            for chunk in chunks:
                readings = await self._probe.ses_readings(
                    [d.domain for d in chunk], region, account
                )
                finishing.extend(
                    asyncio.create_task(
                        self._finish(
                            d, dns[d.domain_id], readings[d.domain], token, report, watched
                        )
                    )
                    for d in chunk
                )

        places = chunks_by_place(batch, self._probe.ses_batch)
        asking = [
            asyncio.create_task(ask_ses(account, region, chunks))
            for (account, region), chunks in places.items()
        ]
        try:
            await asyncio.gather(*asking)
            await asyncio.gather(*finishing)
        finally:
            for asker in asking:
                asker.cancel()
            for task in (*dns.values(), *finishing, watched):
                task.cancel()

    async def _watched(self, domains: list[str]) -> dict[str, list[DnsWarning]]:
        return {} if self._watch is None else await self._watch.observe(domains)

    async def _finish(
        self,
        due: DueDomain,
        dns: asyncio.Task[list[RecordCheck]],
        ses: SesReading,
        token: uuid.UUID,
        report: CycleReport,
        watched: asyncio.Future[dict[str, list[DnsWarning]]],
    ) -> None:
        try:
            checks = await dns
        except Exception:
            log.exception("reverify.probe_failed", domain_id=due.domain_id)
            report.broken += 1
            await repository.release_claims(self._db, [due.domain_id], token)
            return
        verdict = await self._probe.judge(due.records, checks, ses)
        event = VerificationCompleted(
            correlation_id=report.cycle_id,  # the pass that found it, as a request id would
            team_id=due.team_id,
            domain_id=due.domain_id,
            domain=due.domain,
            trigger=VerificationTrigger.SCHEDULED,
            outcome=verdict.outcome,
            ses_dkim_status=verdict.ses_dkim_status,
            checks=verdict.checks,
            checked_at=verdict.checked_at,
            warnings=(await watched).get(due.domain, []),
            ses_identity=verdict.ses_identity,
        )
        async with self._db.transaction() as conn:
            held = await repository.finish_claimed(
                conn,
                due.domain_id,
                token,
                next_due(due.due_at, verdict.checked_at, self._interval),
                verdict.checked_at,
            )
            if not held:
                report.lost += 1
                return
            await repository.record_check(conn, event)
            await outbox.add(conn, event)
        report.checked += 1
        key = verdict.outcome.value
        report.outcomes[key] = report.outcomes.get(key, 0) + 1
