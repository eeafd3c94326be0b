"""The AsyncAPI 3 document of every event, written from the contracts to match the wire.

Built here rather than by FastStream's generator, which describes what FastStream would
publish, not what the relay does: persistent (`deliveryMode: 2`) with `mandatory: false`,
the correlation id in the body (and the AMQP property), CloudEvents attributes as
headers, every envelope field required, and the queues, DLQs and dead-letter exchange
operators see. `tools/asyncapi-check` validates it with the official AsyncAPI parser.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from domainflow.contracts import (
    EVENT_TYPES,
    SUPERSEDED,
    ChangeReason,
    ChangeTrigger,
    CheckOutcome,
    ClaimChecked,
    ClaimRequested,
    DeletionRequested,
    DkimRecord,
    DkimStatus,
    DnsRecords,
    DomainChecksFailed,
    DomainCreated,
    DomainDeleted,
    DomainDeprovisioned,
    DomainProvisioned,
    DomainRequested,
    DomainSnapshot,
    DomainStatus,
    DomainStatusChanged,
    Event,
    MxRecord,
    NamedRecord,
    NotificationRequested,
    NotificationSent,
    ProvisioningRolledBack,
    ReceivingRequested,
    RecordCheck,
    RecordKind,
    SagaNeedsOperator,
    SesIdentity,
    VerificationCompleted,
    VerificationOutcome,
    VerificationTrigger,
    VerifyRequested,
)
from domainflow.contracts.topology import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    PUBLIC_EVENTS,
    PUBLICATIONS,
    SUBSCRIPTIONS,
    dead_letter_queue_name,
    queue_name,
)
from domainflow.kit.envelope import CLOUD_EVENTS_PREFIX, cloud_event_headers, encode

AMQP_BINDING = "0.3.0"
SCHEMAS = "#/components/schemas/"

_AT = datetime(2026, 4, 15, 10, 0, tzinfo=UTC)
_ID = "mdom_k1v3xq9c2b7d"
_DOMAIN = "mail.acme.example"


def _records() -> DnsRecords:
    return DnsRecords(
        mx=[MxRecord(name=_DOMAIN, priority=10, target="mail.sendmux.ai")],
        spf=NamedRecord(name=_DOMAIN, value="v=spf1 include:amazonses.com include:sendmux.ai ~all"),
        dmarc=NamedRecord(name=f"_dmarc.{_DOMAIN}", value="v=DMARC1; p=quarantine"),
        dkim=[
            DkimRecord(name=f"tok{i}._domainkey.{_DOMAIN}", value=f"tok{i}.dkim.amazonses.com")
            for i in range(1, 4)
        ],
        verification=NamedRecord(name=f"_sendmux.{_DOMAIN}", value="sendmux-verify=team_acme"),
    )


def _checks(failing: bool) -> list[RecordCheck]:
    mx = RecordCheck(
        record=RecordKind.MX,
        outcome=CheckOutcome.FAIL if failing else CheckOutcome.PASS,
        name=_DOMAIN,
        expected="10 mail.sendmux.ai",
        found=[] if failing else ["10 mail.sendmux.ai"],
        reason="record_missing" if failing else None,
        message="No MX record: add 10 mail.sendmux.ai." if failing else "",
    )
    return [mx]


def _snapshot(state: DomainStatus) -> DomainSnapshot:
    folded = {DomainStatus.VERIFIED: "verified", DomainStatus.FAILED: "failed"}
    return DomainSnapshot(
        id=_ID,
        domain=_DOMAIN,
        state=state,
        verification_status=folded.get(state, "pending"),
        region="us-east-1",
        external_id="acct-4411",
        metadata={"plan": "growth"},
        ses_dkim_status=DkimStatus.FAILED if state is DomainStatus.FAILED else DkimStatus.SUCCESS,
        dns_records=_records(),
        last_checks=_checks(state is DomainStatus.FAILED),
        created_at=_AT,
        verified_at=_AT if state is DomainStatus.VERIFIED else None,
        last_checked_at=_AT,
    )


def examples() -> dict[str, Event]:
    """One event of each type, as the services publish it (fixed values: the document is
    committed, and a test compares it)."""
    envelope: dict[str, Any] = {
        "event_id": uuid.UUID("0b9f5c1e-3a53-4f7e-9a43-6d1c2b8e0f11"),
        "occurred_at": _AT,
        "correlation_id": "req_7Hn2pQ",
        "team_id": "team_acme",
    }
    common = {**envelope, "domain_id": _ID, "domain": _DOMAIN}
    made: list[Event] = [
        DomainCreated(**common, sequence=1, snapshot=_snapshot(DomainStatus.PROVISIONING)),
        DomainRequested(**common, region="us-east-1"),
        ReceivingRequested(**common, region="us-east-1"),
        DomainProvisioned(**common, region="us-east-1", dkim_tokens=["tok1", "tok2", "tok3"]),
        ProvisioningRolledBack(
            **common,
            failed_step="ses_identity",
            reason="Provisioning stopped while creating the Amazon SES identity with Easy DKIM "
            "(ses:InvalidParameterValue). Everything done before it was undone, so nothing is "
            "half-configured; add the domain again to retry.",
        ),
        SagaNeedsOperator(
            **common, saga="provision", step="mailserver", error_class="mailserver:refused"
        ),
        VerifyRequested(**common, region="us-east-1", records=_records()),
        VerificationCompleted(
            **common,
            trigger=VerificationTrigger.SCHEDULED,
            outcome=VerificationOutcome.FAILED,
            ses_dkim_status=DkimStatus.SUCCESS,
            checks=_checks(True),
            checked_at=_AT,
            ses_identity=SesIdentity(
                dkim_signing_enabled=True,
                verification_status=DkimStatus.SUCCESS,
                mail_from_status=DkimStatus.PENDING,
                verified_for_sending=True,
                checked_at=_AT,
            ),
        ),
        ClaimRequested(
            **{**common, "team_id": "team_globex"},
            claim_id="mclm_4vQ8sLx2",
            claimant=NamedRecord(name=f"_sendmux.{_DOMAIN}", value="sendmux-verify=team_globex"),
            holder=NamedRecord(name=f"_sendmux.{_DOMAIN}", value="sendmux-verify=team_acme"),
        ),
        ClaimChecked(
            **{**common, "team_id": "team_globex"},
            claim_id="mclm_4vQ8sLx2",
            claimant=RecordCheck(
                record=RecordKind.VERIFICATION_TXT,
                outcome=CheckOutcome.PASS,
                name=f"_sendmux.{_DOMAIN}",
                expected="sendmux-verify=team_globex",
                found=["sendmux-verify=team_globex"],
            ),
            holder=RecordCheck(
                record=RecordKind.VERIFICATION_TXT,
                outcome=CheckOutcome.FAIL,
                name=f"_sendmux.{_DOMAIN}",
                expected="sendmux-verify=team_acme",
                found=["sendmux-verify=team_globex"],
                reason="value_mismatch",
            ),
            checked_at=_AT,
        ),
        DeletionRequested(**common, region="us-east-1"),
        DomainDeprovisioned(**common),
        DomainStatusChanged(
            **common,
            region="us-east-1",
            old_status=DomainStatus.VERIFIED,
            new_status=DomainStatus.FAILED,
            reason="The MX record is missing.",
            consecutive_failures=2,
            records=_records(),
            checks=_checks(True),
            ses_dkim_status=DkimStatus.SUCCESS,
            sequence=4,
            reason_code=ChangeReason.RECORDS_BROKE,
            trigger=ChangeTrigger.SCHEDULE,
            snapshot=_snapshot(DomainStatus.FAILED),
        ),
        DomainDeleted(
            **common,
            sequence=6,
            reason_code=ChangeReason.DEPROVISIONED,
            reason="Deleted at the team's request.",
            trigger=ChangeTrigger.REQUEST,
            snapshot=_snapshot(DomainStatus.DELETED),
        ),
        DomainChecksFailed(
            **common,
            status=DomainStatus.PENDING,
            sequence=3,
            trigger=ChangeTrigger.SCHEDULE,
            failing_checks=_checks(True),
            ses_dkim_status=DkimStatus.SUCCESS,
            checked_at=_AT,
            snapshot=_snapshot(DomainStatus.PENDING),
        ),
        NotificationRequested(
            **common,
            region="us-east-1",
            transition_event_id=uuid.UUID("5e0c7d2a-8b1f-4c3e-a6d4-2f9b0e1c7a55"),
            old_status=DomainStatus.VERIFIED,
            new_status=DomainStatus.FAILED,
            reason="The MX record is missing.",
            reason_code=ChangeReason.RECORDS_BROKE,
            checks=_checks(True),
            ses_dkim_status=DkimStatus.SUCCESS,
            owner_emails=["ops@acme.example"],
        ),
        NotificationSent(
            **common,
            transition_event_id=uuid.UUID("5e0c7d2a-8b1f-4c3e-a6d4-2f9b0e1c7a55"),
            new_status=DomainStatus.FAILED,
            recipient_count=1,
            message_ids=["0100018f-ses-message-id"],
        ),
    ]
    return {e.TYPE: e for e in made}


def _publisher(event_type: str) -> str:
    return next(p for p, types in PUBLICATIONS.items() if event_type in types)


def _key(event_type: str) -> str:
    """`domain.status_changed` -> `domainStatusChanged` (a component key)."""
    head, *rest = event_type.replace(".", "_").split("_")
    return head + "".join(part.capitalize() for part in rest)


def _headers_schema() -> dict[str, Any]:
    names = ["specversion", "id", "source", "type", "time", "datacontenttype", "dataschema"]
    properties: dict[str, Any] = {
        f"{CLOUD_EVENTS_PREFIX}{n}": {"type": "string"} for n in [*names, "subject"]
    }
    properties[f"{CLOUD_EVENTS_PREFIX}specversion"] = {"type": "string", "const": "1.0"}
    properties[f"{CLOUD_EVENTS_PREFIX}source"] = {
        "type": "string",
        "pattern": "^/domainflow/[a-z-]+$",
        "description": "`/domainflow/<service>`: the service that published the event.",
    }
    properties[f"{CLOUD_EVENTS_PREFIX}subject"] = {
        "type": "string",
        "description": "The domain's id (`domain_id`), on every event about one domain.",
    }
    properties[f"{CLOUD_EVENTS_PREFIX}time"] = {"type": "string", "format": "date-time"}
    return {
        "type": "object",
        "description": (
            "CloudEvents 1.0 attributes in the AMQP binding's binary mode: the body is the "
            "event itself, unchanged."
        ),
        "properties": properties,
        "required": [f"{CLOUD_EVENTS_PREFIX}{n}" for n in names],
    }


def _schemas() -> dict[str, Any]:
    """Every event model's serialized shape (what is on the wire: fields with defaults are
    always written, so they are required too), its nested models beside it."""
    found: dict[str, Any] = {}
    for cls in (*EVENT_TYPES.values(), *SUPERSEDED):
        schema = cls.model_json_schema(mode="serialization", ref_template=SCHEMAS + "{model}")
        found.update(schema.pop("$defs", {}))
        found[cls.__name__] = schema
    return dict(sorted(found.items()))


def _message(event_type: str, example: Event) -> dict[str, Any]:
    cls = EVENT_TYPES[event_type]
    doc = (cls.__doc__ or "").strip()
    summary = " ".join(doc.split("\n\n")[0].split())
    audience = "public" if event_type in PUBLIC_EVENTS else "internal"
    payload = json.loads(encode(example))
    older = [c for c in SUPERSEDED if event_type == c.TYPE]
    versions = f"Version {cls.VERSION}" + "".join(
        f" (and version {c.VERSION} beside it for one release: the same fields under an"
        f" event id of its own, `{c.__name__}`)"
        for c in older
    )
    schema: dict[str, Any] = {"$ref": SCHEMAS + cls.__name__}
    if older:
        schema = {"anyOf": [schema, *({"$ref": SCHEMAS + c.__name__} for c in older)]}
    return {
        "name": event_type,
        "title": cls.__name__,
        "summary": summary,
        "description": (
            f"{summary}\n\n{versions}; {audience}"
            + (
                " (a subscriber may read it)."
                if audience == "public"
                else " (between domainflow's services; no subscriber may publish or read it)."
            )
        ),
        "contentType": "application/json",
        "correlationId": {
            "description": (
                "The HTTP request id that started the work; also the AMQP `correlation_id`"
                " property."
            ),
            "location": "$message.payload#/correlation_id",
        },
        "headers": {"$ref": "#/components/schemas/CloudEventsHeaders"},
        "payload": schema,
        "bindings": {"amqp": {"messageType": event_type, "bindingVersion": AMQP_BINDING}},
        "examples": [
            {
                "name": f"{_key(event_type)}Example",
                "summary": f"A {event_type} as published by the {_publisher(event_type)}.",
                "headers": cloud_event_headers(_publisher(event_type), event_type, payload),
                "payload": payload,
            }
        ],
    }


def _exchange(name: str, kind: str) -> dict[str, Any]:
    return {"name": name, "type": kind, "durable": True, "autoDelete": False, "vhost": "/"}


def _queue_channel(name: str, description: str, messages: list[str]) -> dict[str, Any]:
    return {
        "address": name,
        "title": name,
        "description": description,
        "messages": {_key(t): {"$ref": f"#/components/messages/{_key(t)}"} for t in messages},
        "bindings": {
            "amqp": {
                "is": "queue",
                "queue": {
                    "name": name,
                    "durable": True,
                    "exclusive": False,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": AMQP_BINDING,
            }
        },
    }


def _channels(delivery_limit: int) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    for event_type in sorted(EVENT_TYPES):
        channels[f"events.{_key(event_type)}"] = {
            "address": event_type,
            "title": f"{EVENTS_EXCHANGE} / {event_type}",
            "description": (
                f"The `{EVENTS_EXCHANGE}` topic exchange, routing key `{event_type}`"
                " (the event's `type`)."
            ),
            "messages": {_key(event_type): {"$ref": f"#/components/messages/{_key(event_type)}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": _exchange(EVENTS_EXCHANGE, "topic"),
                    "bindingVersion": AMQP_BINDING,
                }
            },
        }
    for consumer, types in SUBSCRIPTIONS.items():
        for event_type in types:
            queue = queue_name(consumer, event_type)
            key = _key(queue.replace("-", "_"))
            channels[f"queue.{key}"] = _queue_channel(
                queue,
                f"The {consumer}'s quorum queue for `{event_type}`. Policy"
                f" `domainflow-{consumer}`: `delivery-limit` {delivery_limit} (default, set by"
                " DOMAINFLOW_DELIVERY_LIMIT), then dead-lettered at least once to"
                f" `{DEAD_LETTER_EXCHANGE}` with routing key `{queue}`; `overflow:"
                " reject-publish` at DOMAINFLOW_QUEUE_MAX_LENGTH. An event it cannot read"
                " (not JSON, a newer version, invalid) is parked at once with the header"
                " `domainflow-parked-reason`.",
                [event_type],
            )
            channels[f"deadLetters.{key}"] = {
                "address": queue,
                "title": f"{DEAD_LETTER_EXCHANGE} / {queue}",
                "description": f"Where `{queue}` dead-letters, routed to `{queue}.dlq`.",
                "messages": {
                    _key(event_type): {"$ref": f"#/components/messages/{_key(event_type)}"}
                },
                "bindings": {
                    "amqp": {
                        "is": "routingKey",
                        "exchange": _exchange(DEAD_LETTER_EXCHANGE, "direct"),
                        "bindingVersion": AMQP_BINDING,
                    }
                },
            }
            channels[f"dlq.{key}"] = _queue_channel(
                dead_letter_queue_name(queue),
                f"Messages `{queue}` gave up on, with RabbitMQ's `x-death` headers (or"
                " `domainflow-parked-reason`); `domainflow dead-letters show|replay`.",
                [event_type],
            )
    channels["queue.subscriber"] = _queue_channel(
        "subscriber.{subscriber}",
        "A platform team's own queue (`domainflow subscribers add <name>`), bound to the"
        " public events; `overflow: drop-head` at its length limit. Its user may read only"
        " public routing keys and publish nothing.",
        list(PUBLIC_EVENTS),
    )
    channels["queue.subscriber"]["parameters"] = {
        "subscriber": {"description": "The name given to `domainflow subscribers add`."}
    }
    return channels


def _operations() -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for publisher, types in PUBLICATIONS.items():
        for event_type in types:
            operations[f"{publisher}.publish.{_key(event_type)}"] = {
                "action": "send",
                "title": f"{publisher} publishes {event_type}",
                "summary": (
                    f"The {publisher}'s outbox relay publishes it after the transaction that"
                    " caused it commits, in commit order per domain, with publisher confirms."
                ),
                "channel": {"$ref": f"#/channels/events.{_key(event_type)}"},
                "messages": [
                    {"$ref": f"#/channels/events.{_key(event_type)}/messages/{_key(event_type)}"}
                ],
                "bindings": {
                    "amqp": {
                        "deliveryMode": 2,
                        "mandatory": False,
                        "timestamp": False,
                        "bindingVersion": AMQP_BINDING,
                    }
                },
            }
    for consumer, types in SUBSCRIPTIONS.items():
        for event_type in types:
            key = _key(queue_name(consumer, event_type).replace("-", "_"))
            operations[f"{consumer}.receive.{_key(event_type)}"] = {
                "action": "receive",
                "title": f"{consumer} consumes {event_type}",
                "summary": (
                    "Acknowledged after the handler commits (its inbox drops a repeat);"
                    " unknown fields are ignored."
                ),
                "channel": {"$ref": f"#/channels/queue.{key}"},
                "messages": [{"$ref": f"#/channels/queue.{key}/messages/{_key(event_type)}"}],
                "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING}},
            }
    operations["subscriber.receive"] = {
        "action": "receive",
        "title": "A subscriber consumes the public events",
        "summary": "Keep, per domain id, the event with the highest `sequence`.",
        "channel": {"$ref": "#/channels/queue.subscriber"},
        "messages": [
            {"$ref": f"#/channels/queue.subscriber/messages/{_key(t)}"} for t in PUBLIC_EVENTS
        ],
        "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING}},
    }
    return operations


def document(delivery_limit: int = 5) -> str:
    """The AsyncAPI 3.1 document as indented JSON (stable, so it can be committed)."""
    made = examples()
    spec = {
        "asyncapi": "3.1.0",
        "id": "urn:domainflow:events",
        "info": {
            "title": "domainflow events",
            "version": "2.0.0",
            "description": (
                f"Domain events on the `{EVENTS_EXCHANGE}` topic exchange; the routing key is"
                " the event's `type`. The body is one flat JSON object: the envelope"
                " (event_id, type, version, occurred_at, correlation_id, causation_id,"
                " team_id) beside the payload. Readers ignore fields they do not know: an"
                " added field keeps the version; a change of meaning is a new version,"
                " published beside the old one for one release. Public events carry a"
                " per-domain `sequence`: keep the highest, drop older ones, and resync a"
                " domain from `GET /api/v1/domains/{id}` when in doubt."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "{host}:{port}",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "pathname": "/{vhost}",
                "title": "RabbitMQ",
                "summary": "The broker named by DOMAINFLOW_AMQP_URL.",
                "variables": {
                    "host": {"default": "127.0.0.1", "description": "RabbitMQ's host."},
                    "port": {"default": "5672", "enum": ["5672", "5671"]},
                    "vhost": {"default": "%2F", "description": "The vhost, URL-encoded."},
                },
            }
        },
        "channels": _channels(delivery_limit),
        "operations": _operations(),
        "components": {
            "messages": {_key(t): _message(t, made[t]) for t in sorted(EVENT_TYPES, key=_key)},
            "schemas": {"CloudEventsHeaders": _headers_schema(), **_schemas()},
        },
    }
    return json.dumps(spec, indent=2, sort_keys=True)
