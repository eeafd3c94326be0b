"""The api's ASGI application: REST controllers over the same runtime every service uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.plugins import PluginProtocol
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

from domainflow.api.claims.controller import ClaimController
from domainflow.api.claims.service import ClaimService
from domainflow.api.domains.controller import DomainController
from domainflow.api.domains.repository import DOMAIN_GAUGES
from domainflow.api.domains.representations import Representations
from domainflow.api.domains.service import DomainService
from domainflow.api.entrypoints import build_router
from domainflow.api.http.allow import allow_middleware
from domainflow.api.http.openapi import openapi_config, refine_on_startup
from domainflow.api.http.problems import EXCEPTION_HANDLERS
from domainflow.api.http.request_id import request_id_middleware
from domainflow.api.http.text import refuse_deep_nesting
from domainflow.api.mailboxes.controller import MailboxController
from domainflow.api.mailboxes.service import MailboxService
from domainflow.api.settings import ApiSettings
from domainflow.api.teams.keyring import KeyRing
from domainflow.api.unit_of_work import PostgresUnitOfWork
from domainflow.api.waiting import DomainChanges
from domainflow.kit import tracing
from domainflow.kit.collector import settle_collector
from domainflow.kit.database import migration_files
from domainflow.kit.runtime import ServiceRuntime


def api_migrations() -> list[tuple[str, str]]:
    return migration_files(files("domainflow.api") / "migrations")


@get("/healthz", operation_id="healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "alive", "service": "api"}


@get("/readyz", operation_id="readyz", include_in_schema=False)
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
    runtime: ServiceRuntime = request.app.state.runtime
    ok = await runtime.ready()
    return Response(
        {"status": "ready" if ok else "not_ready", "service": "api"},
        status_code=200 if ok else 503,
    )


def _plugins() -> list[PluginProtocol]:
    if not tracing.configure_tracing("api"):
        return []
    # The ASGI instrumentation, outside every other middleware: one server span per request;
    # probes and scrapes are not requests anyone follows.
    return [OpenTelemetryPlugin(OpenTelemetryConfig(exclude=["/healthz", "/readyz", "/metrics"]))]


def create_app(settings: ApiSettings | None = None) -> Litestar:
    settings = settings or ApiSettings()
    plugins = _plugins()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime = ServiceRuntime("api", settings, settings.database.url)
        await runtime.open(api_migrations())
        uow = PostgresUnitOfWork(runtime.db)
        changes = DomainChanges(runtime.db)
        keyring = KeyRing(uow, runtime.db.url, remember_seconds=settings.keys.cache_seconds)
        await changes.start()
        await keyring.start()
        router, queues = build_router(uow, settings)
        await runtime.start(router, queues)
        runtime.gauges.extend(DOMAIN_GAUGES)
        # `/metrics` answers on the operator's listener only: the public port answers 404.
        app.state.metrics_port = await runtime.serve_health(
            settings.http.metrics_host, settings.http.metrics_port
        )
        app.state.runtime = runtime
        app.state.db = runtime.db
        app.state.uow = uow
        app.state.settings = settings
        app.state.keyring = keyring
        app.state.domains = DomainService(uow, settings, changes)
        app.state.claims = ClaimService(uow, settings, changes, app.state.domains)
        app.state.mailboxes = MailboxService(uow, settings)
        app.state.shown_domains = Representations(settings.http.shown_domains)
        # What start-up built, routes and schemas, is frozen out of the collector's sweeps.
        settle_collector(settings.collector)
        try:
            yield
        finally:
            await keyring.stop()
            await changes.stop()
            await runtime.close()

    return Litestar(
        route_handlers=[
            ClaimController,
            DomainController,
            MailboxController,
            healthz,
            readyz,
        ],
        lifespan=[lifespan],
        middleware=[request_id_middleware, allow_middleware],
        before_request=refuse_deep_nesting,
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.http.max_body_bytes,
        openapi_config=openapi_config(),
        # The generated document, refined once to say every answer (http/openapi.py).
        on_startup=[refine_on_startup],
        plugins=plugins,
        debug=False,
    )
