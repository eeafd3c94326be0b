"""One service replica's life: database, broker, outbox relay, background loops, health.

Every service starts the same way: migrate its own database, connect to RabbitMQ, declare
its queues with their dead-letter queues, relay its outbox, run its loops, answer
`/healthz` (alive) and `/readyz` (database and broker reachable), and stop cleanly on
SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import timedelta
from importlib.resources import files
from typing import Any

from aiohttp import web
from faststream.rabbit import RabbitQueue, RabbitRouter

from domainflow.contracts.topology import RETIRED_QUEUES
from domainflow.kit import tracing
from domainflow.kit.collector import settle_collector
from domainflow.kit.database import Database, migration_files
from domainflow.kit.logging import configure_logging, get_logger
from domainflow.kit.messaging import (
    broker_for,
    connection_name,
    declare_topology,
    retire_queues,
)
from domainflow.kit.metrics import CONTENT_TYPE, OUTBOX_GAUGES, Gauge, exposition, queue_depths
from domainflow.kit.outages import through_outages
from domainflow.kit.outbox import OutboxRelay
from domainflow.kit.policies import QueueLimits
from domainflow.kit.retention import Trim, inbox_trim, keep_trimmed
from domainflow.kit.settings import ServiceSettings

log = get_logger(__name__)


def kit_migrations() -> list[tuple[str, str]]:
    return migration_files(files("domainflow.kit") / "migrations")


class ServiceRuntime:
    def __init__(self, name: str, settings: ServiceSettings, database_url: str) -> None:
        self.name = name
        self.settings = settings
        self.database_url = database_url
        self._db: Database | None = None
        # Before any client exists: the instrumentations hook into clients made after this.
        tracing.configure_tracing(name)
        self.broker = broker_for(
            settings.broker.urls,
            prefetch=settings.broker.prefetch,
            name=connection_name(
                name, socket.gethostname(), settings.broker.replica or str(os.getpid())
            ),
            app_id=name,
        )
        self._tasks: list[asyncio.Task[Any]] = []
        self._health: web.AppRunner | None = None
        self._queues: list[RabbitQueue] = []
        #: What `/metrics` reports: the outbox every service has, plus the service's own.
        self.gauges: list[Gauge] = list(OUTBOX_GAUGES)
        #: Gauges read from another database than the service's own (the SES budget's).
        self.foreign_gauges: list[tuple[Database, Sequence[Gauge]]] = []
        self._reading: asyncio.Task[str] | None = None
        #: Work a handler started that outlives its message (the notifier's shielded mail),
        #: awaited once the broker has stopped and before the database closes.
        self.drains: list[Callable[[], Awaitable[None]]] = []

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("the runtime is not open")
        return self._db

    async def open(self, migrations: Sequence[tuple[str, str]]) -> None:
        configure_logging(self.settings.log.level, self.settings.log.format)
        within = self.settings.startup.timeout
        self._db = await through_outages(
            "postgresql",
            lambda: Database.prepare(
                self.database_url,
                [*kit_migrations(), *migrations],
                size=self.settings.database.pool_size,
            ),
            within=within,
        )
        await through_outages("rabbitmq", self.broker.connect, within=within)

    async def start(
        self,
        router: RabbitRouter | None,
        queues: Sequence[RabbitQueue],
        *,
        relay_outbox: bool = True,
        trims: Sequence[Trim] = (),
    ) -> None:
        """Begin consuming and relaying; call after `open`."""
        self._queues = list(queues)
        await through_outages(
            "rabbitmq",
            lambda: declare_topology(
                self.broker,
                self._queues,
                amqp_url=self.settings.broker.urls,
                management_url=self.settings.broker.management_url,
                limits=QueueLimits.of(self.settings),
            ),
            within=self.settings.startup.timeout,
        )
        if router is not None:
            self.broker.include_router(router)
        await self.broker.start()
        trims = [inbox_trim(timedelta(days=self.settings.retention.inbox_days)), *trims]
        self.spawn(
            keep_trimmed(self.db, trims, every=self.settings.retention.interval), name="retention"
        )
        if retired := RETIRED_QUEUES.get(self.name):
            self.spawn(self._retire(retired), name="retire-queues")
        if relay_outbox:
            relay = OutboxRelay(
                self.db,
                self.broker,
                batch_size=self.settings.outbox.batch_size,
                lease_seconds=self.settings.outbox.lease_seconds,
                poll_interval=self.settings.outbox.poll_interval,
                service=self.name,
            )
            self.spawn(relay.run(), name="outbox-relay")
        settle_collector(self.settings.collector)
        log.info("service.started", service=self.name, queues=[q.name for q in self._queues])

    async def _retire(self, queues: Sequence[str]) -> None:
        """Retire an earlier release's queues, trying again on the retention cadence while a
        replica of that release still reads one (a rolling upgrade) or its DLQ holds events."""
        left = list(queues)
        while left:
            try:
                left = await retire_queues(await self.broker.connect(), left)
            except Exception as failure:  # the broker blinked: next time
                log.warning("queue.retire_failed", queues=left, error=repr(failure))
            if left:
                await asyncio.sleep(self.settings.retention.interval)

    async def metrics(self) -> str:
        """`/metrics`: the service's gauges read from its database, then the depth, consumers
        and parked messages of each queue it consumes.

        Scrapes that arrive while one is being read share its answer: however many scrapers
        there are, they hold one of the pool's connections at a time, and the requests the
        service exists for keep the others."""
        if self._reading is None:
            self._reading = asyncio.create_task(self._read_metrics(), name=f"{self.name}:metrics")
            self._reading.add_done_callback(self._read)
        # A scraper that hangs up cancels its own wait, not the reading the others share.
        return await asyncio.shield(self._reading)

    def _read(self, reading: asyncio.Task[str]) -> None:
        if self._reading is reading:
            self._reading = None
        if not reading.cancelled():
            reading.exception()  # retrieved here too when every scraper had hung up

    async def _read_metrics(self) -> str:
        text = await exposition(self.db, self.gauges, self.name)
        for db, gauges in self.foreign_gauges:
            text += await exposition(db, gauges, self.name)
        return text + await queue_depths(self.broker, [q.name for q in self._queues], self.name)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> None:
        """Run a loop for the replica's lifetime; a crash is logged, not swallowed silently."""
        task = asyncio.create_task(coro, name=f"{self.name}:{name}")
        task.add_done_callback(self._report)
        self._tasks.append(task)

    def _report(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("service.loop_died", loop=task.get_name(), error=repr(task.exception()))

    async def ready(self) -> bool:
        broker_ok = False
        with contextlib.suppress(Exception):
            broker_ok = bool(await self.broker.ping(timeout=2.0))
        return broker_ok and await self.db.ping()

    async def serve_health(self, host: str, port: int) -> int:
        """The operator's listener: `/healthz`, `/readyz` and `/metrics`, on a port of its own
        (loopback by default) so that nothing public reaches them; returns the port it bound
        (`port` 0: one the kernel chose)."""

        async def healthz(_: web.Request) -> web.Response:
            return web.json_response({"status": "alive", "service": self.name})

        async def readyz(_: web.Request) -> web.Response:
            ok = await self.ready()
            return web.json_response(
                {"status": "ready" if ok else "not_ready", "service": self.name},
                status=200 if ok else 503,
            )

        async def metrics(_: web.Request) -> web.Response:
            text = await self.metrics()
            return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/metrics", metrics)
        self._health = web.AppRunner(app, access_log=None)
        await self._health.setup()
        await web.TCPSite(self._health, host, port).start()
        bound: int = self._health.addresses[0][1]
        return bound

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._reading is not None:
            self._reading.cancel()
        with contextlib.suppress(Exception):
            await self.broker.stop()
        for drain in self.drains:
            with contextlib.suppress(Exception):
                await drain()
        if self._health is not None:
            await self._health.cleanup()
        if self._db is not None:
            await self._db.close()
            self._db = None
        # The last spans leave before the process does (a blocking call: off the loop).
        await asyncio.to_thread(tracing.shutdown_tracing)
        log.info("service.stopped", service=self.name)


async def run_until_signalled(
    runtime: ServiceRuntime, setup: Callable[[ServiceRuntime], Coroutine[Any, Any, None]]
) -> None:
    """Run `setup` (which opens and starts the runtime), then wait for SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await setup(runtime)
        await stop.wait()
    finally:
        await runtime.close()
