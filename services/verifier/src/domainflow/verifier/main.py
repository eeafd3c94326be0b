"""Run one verifier replica: consumers for verify requests and status changes, and the cycle."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from importlib.resources import files

from domainflow.kit.database import Database, migration_files
from domainflow.kit.retention import Trim
from domainflow.kit.runtime import ServiceRuntime, run_until_signalled
from domainflow.kit.ses_accounts import SesRoutes
from domainflow.kit.ses_budget import GAUGES as SES_BUDGET_GAUGES
from domainflow.kit.ses_budget import SesBudget, open_budget
from domainflow.verifier.adapters.doh import DohResolver
from domainflow.verifier.adapters.rdap import RdapClient
from domainflow.verifier.adapters.ses import SesIdentities
from domainflow.verifier.checks import verification_outcome
from domainflow.verifier.cycle import ReverifyCycle
from domainflow.verifier.dns_probe import (
    AuthorityOptions,
    diagnose_dkim,
    dns_check,
    preflight,
    probe_claim,
)
from domainflow.verifier.entrypoints import build_router
from domainflow.verifier.handlers import VerifierHandlers
from domainflow.verifier.metrics import GAUGES
from domainflow.verifier.probe import DomainProbe, SesSource
from domainflow.verifier.settings import VerifierSettings
from domainflow.verifier.watch import RegistrationWatch

SERVICE = "verifier"


def migrations() -> list[tuple[str, str]]:
    return migration_files(files("domainflow.verifier") / "migrations")


@dataclass(frozen=True)
class Verifier:
    """The parts of a replica that do the work, wired to one database."""

    handlers: VerifierHandlers
    cycle: ReverifyCycle
    probe: DomainProbe
    resolver: DohResolver


def _ses_identities(settings: VerifierSettings) -> SesIdentities:
    """SES's identity reads, each domain's in its own account (`DOMAINFLOW_SES_ACCOUNTS`)."""
    routes = SesRoutes(settings.ses, settings.aws)
    return SesIdentities(routes.clients(None), routes=routes)


@asynccontextmanager
async def open_verifier(
    db: Database,
    settings: VerifierSettings,
    *,
    ses: SesSource | None = None,
    budget: SesBudget | None = None,
) -> AsyncIterator[Verifier]:
    """The resolver, SES client, shared SES budget, handlers and cycle; closed on exit.

    Without `budget`, the one the settings name is opened (its database, shared by every
    service that calls SES)."""
    async with AsyncExitStack() as stack:
        if budget is None:
            budget, budget_db = await open_budget(settings)
            stack.push_async_callback(budget_db.close)
        resolver = await stack.enter_async_context(
            DohResolver(
                settings.dns.doh_url,
                ca_file=settings.dns.doh_ca_file,
                timeout=settings.dns.doh_timeout,
                max_concurrency=settings.dns.concurrency,
            )
        )
        source: SesSource = (
            ses if ses is not None else await stack.enter_async_context(_ses_identities(settings))
        )
        authority = (
            AuthorityOptions(settings.dns.authority_port, settings.dns.authority_timeout)
            if settings.dns.authority_check
            else None
        )
        probe = DomainProbe(
            dns_check(resolver, authority),
            source,
            budget,
            verification_outcome,
            ses_batch=settings.ses.batch,
            ses_timeout=settings.ses.timeout,
            dns_concurrency=settings.dns.concurrency,
            dkim_diagnosis=functools.partial(diagnose_dkim, resolver),
            preflight=functools.partial(preflight, resolver),
        )
        rdap = (
            await stack.enter_async_context(
                RdapClient(
                    settings.registration.rdap_url, timeout=settings.registration.rdap_timeout
                )
            )
            if settings.registration.rdap_url
            else None
        )
        watch = (
            RegistrationWatch(
                db,
                resolver,
                rdap,
                interval=timedelta(seconds=settings.registration.interval),
                notice=timedelta(days=settings.registration.expiry_notice_days),
            )
            if settings.registration.watch
            else None
        )
        interval = timedelta(seconds=settings.reverify.interval)
        yield Verifier(
            handlers=VerifierHandlers(
                db,
                probe,
                reverify_interval=interval,
                claim_check=functools.partial(probe_claim, resolver),
            ),
            cycle=ReverifyCycle(
                db,
                probe,
                interval=interval,
                tick=settings.reverify.tick,
                batch=settings.reverify.batch,
                lease=settings.reverify.lease,
                parallel_claims=settings.reverify.parallel_claims,
                watch=watch,
            ),
            probe=probe,
            resolver=resolver,
        )


def retention(settings: VerifierSettings) -> list[Trim]:
    """Probe records and tombstones age out together: a status event late by that long is
    not a redelivery but an operator's replay, and the api ignores a deleted domain anyway."""
    keep = timedelta(days=settings.retention.check_history_days)
    return [
        Trim("check_history", "checked_at", keep),
        Trim("schedule", "updated_at", keep, only="status = 'deleted'"),
    ]


async def start(
    runtime: ServiceRuntime, settings: VerifierSettings, stack: AsyncExitStack
) -> Verifier:
    """Open the runtime, consume, spawn the cycle, answer health checks."""
    await runtime.open(migrations())
    budget, budget_db = await open_budget(settings)
    stack.push_async_callback(budget_db.close)
    verifier = await stack.enter_async_context(open_verifier(runtime.db, settings, budget=budget))
    router, queues = build_router(verifier.handlers, settings)
    await runtime.start(router, queues, trims=retention(settings))
    runtime.spawn(verifier.cycle.run(), name="reverify-cycle")
    runtime.gauges.extend(GAUGES)
    runtime.foreign_gauges.append((budget_db, SES_BUDGET_GAUGES))
    await runtime.serve_health(settings.health.host, settings.health.port)
    return verifier


async def serve(settings: VerifierSettings | None = None) -> None:
    settings = settings or VerifierSettings()
    runtime = ServiceRuntime(SERVICE, settings, settings.database.url)
    async with AsyncExitStack() as stack:

        async def setup(rt: ServiceRuntime) -> None:
            await start(rt, settings, stack)

        await run_until_signalled(runtime, setup)


def run(settings: VerifierSettings | None = None) -> None:
    asyncio.run(serve(settings))
