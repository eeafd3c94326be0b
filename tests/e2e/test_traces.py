"""One create and one verify are each one trace through the services' processes, with the
calls to PostgreSQL, SES and DoH as child spans, exported over OTLP/HTTP to a receiver the
test runs; the services log each trace's id beside the request id.

A create reaches the api, the provisioner and the verifier (owners hear nothing of a new
domain, so the notifier is not asked); the verify that proves the domain reaches all four:
the verifier, the notifier mailing the owners, and the provisioner putting the domain live
on the mail server now that its ownership TXT was seen."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from domainflow.contracts import DnsRecords
from domainflow.contracts.topology import queue_name
from domainflow.sandbox.dns import DnsSandbox
from domainflow.sandbox.moto import MotoSandbox
from tests.e2e.conftest import E2E, eventually, running_stack
from tests.e2e.otlp_receiver import CLIENT, CONSUMER, PRODUCER, SERVER, OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.e2e

SERVICES = ("api", "provisioner", "verifier", "notifier")


def _service(name: str) -> str:
    return f"domainflow-{name}"


def _trace_id_logged(stack_dir: Path, service: str, request_id: str) -> str | None:
    """The trace id a service logged beside the request's id (its correlation id)."""
    log = stack_dir / f"{service}-0.log"
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("correlation_id") == request_id:
            trace_id = entry.get("trace_id")
            if isinstance(trace_id, str):
                return trace_id
    return None


def _descendants(spans: list[ReceivedSpan], of: ReceivedSpan) -> list[ReceivedSpan]:
    children: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        children.setdefault(span.parent_id, []).append(span)
    found, todo = [], [of]
    while todo:
        for child in children.get(todo.pop().span_id, []):
            found.append(child)
            todo.append(child)
    return found


def _is_postgres(span: ReceivedSpan) -> bool:
    return span.kind == CLIENT and span.attributes.get("db.system") == "postgresql"


def _is_ses(span: ReceivedSpan) -> bool:
    return span.kind == CLIENT and span.attributes.get("rpc.system") == "aws-api"


def _http_url(span: ReceivedSpan) -> str:
    return str(span.attributes.get("http.url") or span.attributes.get("url.full") or "")


def _whole(spans: list[ReceivedSpan]) -> bool:
    """One root, and every other span's parent arrived: a single connected trace."""
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if not s.parent_id]
    return len(roots) == 1 and all(s.parent_id in ids for s in spans if s.parent_id)


def _consumer_in(spans: list[ReceivedSpan], service: str, event_type: str) -> ReceivedSpan | None:
    """The span of `service` handling an `event_type` delivery."""
    queue = queue_name(service, event_type)
    return next(
        (
            s
            for s in spans
            if s.service == _service(service)
            and s.kind == CONSUMER
            and s.attributes.get("messaging.destination.subscription.name") == queue
        ),
        None,
    )


def _missing(
    receiver: OtlpReceiver, trace_id: str, wanted: dict[str, Callable[[list[ReceivedSpan]], bool]]
) -> list[str]:
    spans = receiver.trace(trace_id)
    return [what for what, present in wanted.items() if not present(spans)]


async def _until_complete(
    receiver: OtlpReceiver, trace_id: str, wanted: dict[str, Callable[[list[ReceivedSpan]], bool]]
) -> list[ReceivedSpan]:
    try:
        await eventually(
            lambda: not _missing(receiver, trace_id, wanted) and _whole(receiver.trace(trace_id)),
            timeout=60,
        )
    except AssertionError:
        spans = receiver.trace(trace_id)
        raise AssertionError(
            f"trace {trace_id}: missing {_missing(receiver, trace_id, wanted)}; whole:"
            f" {_whole(spans)}; spans: {sorted((s.service, s.name) for s in spans)}"
        ) from None
    return receiver.trace(trace_id)


def _queries_of(service: str) -> Callable[[list[ReceivedSpan]], bool]:
    def present(spans: list[ReceivedSpan]) -> bool:
        return any(_is_postgres(s) and s.service == _service(service) for s in spans)

    return present


def _services_of(spans: Iterable[ReceivedSpan]) -> set[str]:
    return {s.service for s in spans}


async def test_one_create_and_one_verify_are_each_one_trace_across_the_services(
    amqp_vhost: Callable[[str], str],
    moto_server: MotoSandbox,
    dns_sandbox: DnsSandbox,
    mailserver_database_url: str,
    tmp_path: Path,
) -> None:
    receiver = OtlpReceiver()
    await receiver.start()
    try:
        async with running_stack(
            amqp_vhost,
            moto_server,
            dns_sandbox,
            mailserver_database_url,
            tmp_path,
            name="traces",
            api_replicas=1,
            extra_env={
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_BSP_SCHEDULE_DELAY": "200",
                # No scheduled check may beat the manual verify to the verified transition.
                "DOMAINFLOW_REVERIFY_INTERVAL": "3600",
            },
        ) as e2e:
            await _create_then_verify(e2e, receiver, tmp_path)
    finally:
        await receiver.stop()


async def _create_then_verify(e2e: E2E, receiver: OtlpReceiver, stack_dir: Path) -> None:
    owner = f"owner-{uuid.uuid4().hex[:6]}@acme.example"
    key = await e2e.key(f"e2e-traces-{uuid.uuid4().hex[:4]}", (owner,))
    name = f"mail.traces-{uuid.uuid4().hex[:8]}.example"

    # The create: api -> provisioner (SES) -> api -> verifier.
    status, body = await e2e.call("POST", "/domains", key, json={"domain": name})
    assert status == 201, body
    public_id, create_id = body["data"]["id"], body["meta"]["request_id"]
    create_trace = await eventually(
        lambda: _trace_id_logged(stack_dir, "provisioner", create_id), timeout=30
    )
    spans = await _until_complete(
        receiver,
        create_trace,
        {
            "the api's request span": lambda s: any(
                x.kind == SERVER and not x.parent_id and x.service == _service("api") for x in s
            ),
            "the api's publish": lambda s: any(
                x.kind == PRODUCER and x.service == _service("api") for x in s
            ),
            "the provisioner's delivery": lambda s: bool(
                _consumer_in(s, "provisioner", "domain.requested")
            ),
            "the api hearing it provisioned": lambda s: bool(
                _consumer_in(s, "api", "domain.provisioned")
            ),
            "the verifier's delivery": lambda s: bool(
                _consumer_in(s, "verifier", "domain.status_changed")
            ),
            **{f"{svc}'s queries": _queries_of(svc) for svc in ("api", "provisioner", "verifier")},
            "the provisioner's SES calls": lambda s: any(
                _is_ses(x) and x.service == _service("provisioner") for x in s
            ),
        },
    )
    assert _services_of(spans) == {_service(s) for s in ("api", "provisioner", "verifier")}
    root = next(s for s in spans if not s.parent_id)
    assert root.service == _service("api")
    assert root.kind == SERVER
    assert root.name.startswith("POST"), root.name
    # The outside calls hang under the delivery that made them.
    provisioning = _consumer_in(spans, "provisioner", "domain.requested")
    assert provisioning is not None
    under = _descendants(spans, provisioning)
    ses_calls = [s for s in under if _is_ses(s)]
    assert ses_calls, "no SES call under the provisioner's delivery"
    assert all(s.name.startswith(("SES.", "SESV2.")) for s in ses_calls)
    # ... and each SES call's HTTP request (aiohttp's span) under it, to moto.
    assert any(
        e2e.moto.url.split("//")[1] in _http_url(h)
        for call in ses_calls
        for h in _descendants(spans, call)
    )
    assert any(_is_postgres(s) for s in under)
    # The api, its replica-less consumers and the provisioner logged the trace beside the id.
    for service in ("api", "provisioner", "verifier"):
        assert _trace_id_logged(stack_dir, service, create_id) == create_trace, service

    # The verify: api -> verifier (DoH, SES) -> api -> notifier (SES email), verifier, and
    # provisioner (the domain goes live on the mail server).
    _, records = await e2e.call("GET", f"/domains/{public_id}/dns-records", key)
    placed = DnsRecords.model_validate(records["data"])
    e2e.dns.place(placed)
    try:
        status, body = await e2e.call("POST", f"/domains/{public_id}/verify", key)
        assert status == 200, body
        assert body["data"]["status"] == "verified", body
        verify_id = body["meta"]["request_id"]
        await eventually(lambda: e2e.emails_to(owner))
        verify_trace = await eventually(
            lambda: _trace_id_logged(stack_dir, "notifier", verify_id), timeout=30
        )
        assert verify_trace != create_trace
        spans = await _until_complete(
            receiver,
            verify_trace,
            {
                "the api's request span": lambda s: any(
                    x.kind == SERVER and not x.parent_id and x.service == _service("api") for x in s
                ),
                "the verifier's delivery": lambda s: bool(
                    _consumer_in(s, "verifier", "domain.verify_requested")
                ),
                "the api hearing the verdict": lambda s: bool(
                    _consumer_in(s, "api", "domain.verification_completed")
                ),
                "the notifier's delivery": lambda s: bool(
                    _consumer_in(s, "notifier", "notification.requested")
                ),
                "the provisioner's delivery": lambda s: bool(
                    _consumer_in(s, "provisioner", "domain.receiving_requested")
                ),
                "the verifier's DoH lookups": lambda s: any(
                    x.kind == CLIENT
                    and x.service == _service("verifier")
                    and e2e.dns.doh_url.split("//")[1].split("/")[0] in _http_url(x)
                    for x in s
                ),
                "the notifier's email": lambda s: any(
                    _is_ses(x) and "Send" in x.name and x.service == _service("notifier") for x in s
                ),
            },
        )
        assert _services_of(spans) == {_service(s) for s in SERVICES}
        root = next(s for s in spans if not s.parent_id)
        assert root.service == _service("api")
        assert "verify" in root.name or "verify" in str(root.attributes), root
        probing = _consumer_in(spans, "verifier", "domain.verify_requested")
        assert probing is not None
        doh = e2e.dns.doh_url.split("//")[1].split("/")[0]
        assert any(doh in _http_url(s) for s in _descendants(spans, probing))
        mailing = _consumer_in(spans, "notifier", "notification.requested")
        assert mailing is not None
        assert any(_is_ses(s) for s in _descendants(spans, mailing))
    finally:
        e2e.dns.remove(placed)
