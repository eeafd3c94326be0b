"""Run one notifier replica: migrate, consume status changes, relay the outbox, answer health."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from importlib.resources import files

from domainflow.kit.aws import AwsClients
from domainflow.kit.database import migration_files
from domainflow.kit.retention import Trim
from domainflow.kit.runtime import ServiceRuntime, run_until_signalled
from domainflow.kit.ses_budget import GAUGES as SES_BUDGET_GAUGES
from domainflow.kit.ses_budget import open_budget
from domainflow.notifier.adapters.repository import PgNotifierStore
from domainflow.notifier.adapters.ses import SesMailer
from domainflow.notifier.entrypoints import build_router
from domainflow.notifier.handlers import CONSUMER, NotifierHandlers
from domainflow.notifier.metrics import GAUGES
from domainflow.notifier.settings import NotifierSettings


def migrations() -> list[tuple[str, str]]:
    return migration_files(files("domainflow.notifier") / "migrations")


def retention(settings: NotifierSettings) -> list[Trim]:
    """Settled mails age out; one whose fate is unknown stays until an operator settles it."""
    keep = timedelta(days=settings.retention.notification_days)
    return [Trim("notifications", "updated_at", keep, only="state IN ('sent', 'rejected')")]


async def serve(settings: NotifierSettings | None = None) -> None:
    settings = settings or NotifierSettings()
    runtime = ServiceRuntime(CONSUMER, settings, settings.database.url)
    # One attempt per SendEmail: the SDK retries read timeouts too, and a retry after a send
    # SES carried out would mail the owner twice. Redelivery retries what provably failed;
    # the budget resends only what SES refused for rate (not sent, provably).
    budget, budget_db = await open_budget(settings)
    try:
        async with SesMailer(AwsClients(settings.aws, max_attempts=1), budget) as mailer:

            async def setup(rt: ServiceRuntime) -> None:
                await rt.open(migrations())
                rt.foreign_gauges.append((budget_db, SES_BUDGET_GAUGES))
                handlers = NotifierHandlers(PgNotifierStore(rt.db), mailer, settings)
                rt.drains.append(handlers.drain)
                router, queues = build_router(handlers, settings)
                await rt.start(router, queues, trims=retention(settings))
                rt.gauges.extend(GAUGES)
                await rt.serve_health(settings.health.host, settings.health.port)

            await run_until_signalled(runtime, setup)
    finally:
        await budget_db.close()


def run() -> None:
    asyncio.run(serve())
