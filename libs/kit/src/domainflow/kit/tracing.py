"""Traces: one trace per request across every service, exported only when `OTEL_*` asks for it.

Off by default. On when `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`) or an
OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`);
`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` keeps it off. The exporter, its
endpoint, headers and batching are read by the OpenTelemetry SDK from its own variables.

The maintained instrumentations make the spans of HTTP requests served (the api's ASGI app),
PostgreSQL queries (asyncpg) and HTTP calls made (aiohttp's client, which DoH lookups and
aiobotocore's SES calls go through); this module adds what no instrumentation knows: the
outbox carries the W3C trace context of the transaction that wrote an event, the relay
publishes it as the message's `traceparent`, the consumer continues the trace from it, and
each SES call gets a span named for its operation.

Disabled, nothing is instrumented and every function here returns at its first line, so the
hot paths pay one flag test.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

from domainflow.kit.logging import get_logger

log = get_logger(__name__)

#: The W3C trace context headers (https://www.w3.org/TR/trace-context/).
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_W3C = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_tracer: trace.Tracer = trace.NoOpTracer()


def tracing_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the standard variables ask for traces to be exported."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def enabled() -> bool:
    return _provider is not None


class WorkRoots(Sampler):
    """Samples every trace a unit of work starts (a request served, a message consumed, a
    scheduled check) and none that a lone client call would start: the relay's polling and
    the retention loop's queries are not requests, and would bury them."""

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        if kind == SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return ALWAYS_ON.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "WorkRoots"


def _exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    names = [n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "otlp":
            # http/protobuf: the exporter reads OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT,
            # _HEADERS, _TIMEOUT, _COMPRESSION and _CERTIFICATE itself.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name:
            log.warning("tracing.unknown_exporter", exporter=name, known=["otlp", "console"])
    return exporters


def configure_tracing(service: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Install the tracer provider and the instrumentations if the variables ask for traces;
    returns whether tracing is on. Once per process: later calls return at once."""
    global _provider, _tracer
    if _provider is not None:
        return True
    if not tracing_requested(environ):
        return False
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    name = environ.get("OTEL_SERVICE_NAME") or f"domainflow-{service}"
    resource = Resource.create({SERVICE_NAME: name, "service.namespace": "domainflow"})
    # An operator's OTEL_TRACES_SAMPLER wins (the SDK reads it when given no sampler).
    sampler = None if environ.get("OTEL_TRACES_SAMPLER") else ParentBased(root=WorkRoots())
    provider = TracerProvider(resource=resource, sampler=sampler)
    for exporter in _exporters(environ):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)
    _provider = provider
    _tracer = provider.get_tracer("domainflow")
    log.info("tracing.enabled", service_name=name)
    return True


def shutdown_tracing() -> None:
    """Export what is still buffered (blocks up to the exporter's timeout); call at exit."""
    if _provider is not None:
        _provider.force_flush()


def current_trace_id() -> str | None:
    """The current trace's id as logs and tracing backends print it (32 hex digits)."""
    if _provider is None:
        return None
    span_context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(span_context.trace_id) if span_context.is_valid else None


def trace_context() -> dict[str, str]:
    """The current span's W3C headers (`traceparent`, and `tracestate` if any) to store with
    work that continues later; empty when tracing is off or there is no span."""
    if _provider is None:
        return {}
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier


def _header_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else None


def _remote_context(headers: Mapping[str, Any] | None) -> otel_context.Context:
    carrier = {
        key: text
        for key in (TRACEPARENT, TRACESTATE)
        if (text := _header_text((headers or {}).get(key))) is not None
    }
    return _W3C.extract(carrier)


@contextlib.contextmanager
def consuming(
    headers: Mapping[str, Any] | None, queue: str, attributes: Mapping[str, Any]
) -> Iterator[Span | None]:
    """The span of one delivery's handling, continuing the trace its `traceparent` names."""
    if _provider is None:
        yield None
        return
    with _tracer.start_as_current_span(
        f"{queue} process",
        context=_remote_context(headers),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "process",
            "messaging.destination.subscription.name": queue,
            **attributes,
        },
    ) as span:
        yield span


@contextlib.contextmanager
def continuing(
    stored: Mapping[str, Any], name: str, attributes: Mapping[str, Any]
) -> Iterator[Span | None]:
    """The span of work done later for a request (a saga run from its row), a child of the
    trace context stored with that work."""
    if _provider is None:
        yield None
        return
    with _tracer.start_as_current_span(
        name, context=_remote_context(stored), kind=SpanKind.INTERNAL, attributes=attributes
    ) as span:
        yield span


def publishing(stored: Mapping[str, Any], exchange: str, attributes: Mapping[str, Any]) -> Span:
    """A relay's span for sending one stored event, a child of the context stored with it;
    the caller ends it when the broker answers."""
    return _tracer.start_span(
        f"{exchange} publish",
        context=_remote_context(stored),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "send",
            "messaging.destination.name": exchange,
            **attributes,
        },
    )


def headers_of(span: Span) -> dict[str, str]:
    """The W3C headers naming `span` as the parent of what a message causes."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def end(span: Span, error: str | None = None) -> None:
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()


def trace_aws_calls(client: Any, service: str) -> None:
    """Give each call `client` makes a span, `SES.SendEmail` as botocore's instrumentation
    names them (that instrumentation patches botocore's synchronous client, which aiobotocore
    replaces); the HTTP request under it is aiohttp's span."""
    if _provider is None:
        return
    call: Callable[[str, dict[str, Any]], Awaitable[Any]] = client._make_api_call
    region = client.meta.region_name

    async def traced(operation: str, params: dict[str, Any]) -> Any:
        with _tracer.start_as_current_span(
            f"{service}.{operation}",
            kind=SpanKind.CLIENT,
            attributes={
                "rpc.system": "aws-api",
                "rpc.service": service,
                "rpc.method": operation,
                "cloud.region": region or "",
            },
        ):
            return await call(operation, params)

    client._make_api_call = traced
