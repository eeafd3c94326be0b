"""Run one provisioner replica: migrate, consume requests, relay the outbox, recover sagas.

`DOMAINFLOW_MAILSERVER_ENSURE_SCHEMA` (default true, for the local stack and tests) creates
the mail platform's virtual-domain table if it is missing. In production the mail
platform owns that table and its database: set it to false, and the provisioner only
inserts and deletes rows in it.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import asyncpg

from domainflow.kit.database import ensure_database
from domainflow.kit.runtime import ServiceRuntime, run_until_signalled
from domainflow.kit.ses_accounts import SesRoutes
from domainflow.kit.ses_budget import GAUGES as SES_BUDGET_GAUGES
from domainflow.kit.ses_budget import open_budget
from domainflow.provisioner.adapters.mailserver import MailServer, ensure_schema
from domainflow.provisioner.adapters.repository import migrations
from domainflow.provisioner.adapters.ses import SesIdentities
from domainflow.provisioner.entrypoints import build_router
from domainflow.provisioner.handlers import SagaRunner
from domainflow.provisioner.metrics import GAUGES
from domainflow.provisioner.settings import ProvisionerSettings


async def serve(settings: ProvisionerSettings | None = None) -> None:
    settings = settings or ProvisionerSettings()
    runtime = ServiceRuntime("provisioner", settings, settings.database.url)
    async with AsyncExitStack() as closing:

        async def setup(rt: ServiceRuntime) -> None:
            await rt.open(migrations())
            if settings.mailserver.ensure_schema:
                await ensure_database(settings.mailserver.database_url)
            pool = await asyncpg.create_pool(
                settings.mailserver.database_url, min_size=1, max_size=4
            )
            closing.push_async_callback(pool.close)
            if settings.mailserver.ensure_schema:
                await ensure_schema(pool)
            budget, budget_db = await open_budget(settings)
            closing.push_async_callback(budget_db.close)
            # Opened once: one kept connection per region, no TLS handshake per call.
            routes = SesRoutes(settings.ses, settings.aws)
            ses = await closing.enter_async_context(
                SesIdentities(
                    routes.clients(None),
                    budget=budget,
                    call_timeout=settings.saga.step_timeout,
                    routes=routes,
                )
            )
            runner = SagaRunner(rt.db, MailServer(pool), ses, settings)
            router, queues = build_router(runner, settings)
            await rt.start(router, queues)
            rt.spawn(runner.dispatch_loop(), name="saga-dispatch")
            rt.gauges.extend(GAUGES)
            rt.foreign_gauges.append((budget_db, SES_BUDGET_GAUGES))
            await rt.serve_health(settings.health.host, settings.health.port)

        await run_until_signalled(runtime, setup)


def run() -> None:
    asyncio.run(serve())
