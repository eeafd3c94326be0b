"""When traces are on, which traces are kept, and how a stored context is read back."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, ParentBased
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from domainflow.kit import tracing

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_traces_are_off_unless_the_standard_variables_ask(
    environ: dict[str, str], on: bool
) -> None:
    assert tracing.tracing_requested(environ) is on


def test_off_by_default_nothing_is_captured_or_started() -> None:
    # The unit tests' environment asks for no traces: the hot paths see an empty context.
    assert not tracing.enabled()
    assert tracing.trace_context() == {}
    assert tracing.current_trace_id() is None
    with tracing.consuming({"traceparent": TRACEPARENT}, "q", {}) as span:
        assert span is None


def _parent(sampled: bool) -> Context:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    context = SpanContext(TRACE_ID, SPAN_ID, is_remote=True, trace_flags=flags)
    return trace.set_span_in_context(trace.NonRecordingSpan(context))


@pytest.mark.parametrize(
    ("kind", "kept"),
    [
        (SpanKind.SERVER, True),
        (SpanKind.CONSUMER, True),
        (SpanKind.INTERNAL, True),
        (SpanKind.PRODUCER, True),
        # A query or HTTP call outside any request (the relay polling, a retention trim).
        (SpanKind.CLIENT, False),
    ],
)
def test_a_trace_starts_with_a_unit_of_work_not_a_lone_client_call(
    kind: SpanKind, kept: bool
) -> None:
    sampler = ParentBased(root=tracing.WorkRoots())
    decision = sampler.should_sample(None, TRACE_ID, "x", kind).decision
    assert (decision == Decision.RECORD_AND_SAMPLE) is kept


def test_a_client_call_inside_a_request_follows_the_request() -> None:
    sampler = ParentBased(root=tracing.WorkRoots())
    inside = sampler.should_sample(_parent(True), TRACE_ID, "SELECT", SpanKind.CLIENT)
    assert inside.decision == Decision.RECORD_AND_SAMPLE
    unsampled = sampler.should_sample(_parent(False), TRACE_ID, "SELECT", SpanKind.CLIENT)
    assert unsampled.decision == Decision.DROP


@pytest.mark.parametrize("value", [TRACEPARENT, TRACEPARENT.encode()])
def test_a_traceparent_from_the_headers_names_the_parent(value: str | bytes) -> None:
    context = tracing._remote_context({"traceparent": value, "other": 1})
    parent = trace.get_current_span(context).get_span_context()
    assert (parent.trace_id, parent.span_id, parent.is_remote) == (TRACE_ID, SPAN_ID, True)


@pytest.mark.parametrize("headers", [None, {}, {"traceparent": "not-a-traceparent"}])
def test_without_a_usable_traceparent_the_work_starts_a_trace(
    headers: dict[str, str] | None,
) -> None:
    context = tracing._remote_context(headers)
    assert not trace.get_current_span(context).get_span_context().is_valid
