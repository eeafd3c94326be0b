"""The alert rules shipped in deploy/ read metrics that exist, and say what to do."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from domainflow.kit.metrics import OUTBOX_GAUGES, QUEUE_GAUGES

RULES = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "domainflow-alerts.yml"
#: rabbitmq_prometheus' own names for the broker's alarms.
RABBITMQ_METRICS = {
    "rabbitmq_alarms_memory_used_watermark",
    "rabbitmq_alarms_free_disk_space_watermark",
    "rabbitmq_alarms_file_descriptor_limit",
}


def _rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def test_every_metric_an_alert_reads_is_one_something_exports() -> None:
    ours = {g.name for g in OUTBOX_GAUGES} | {name for name, _ in QUEUE_GAUGES}
    for rule in _rules():
        used = set(re.findall(r"\b((?:domainflow|rabbitmq)_[a-z_]+)\b", rule["expr"]))
        assert used, rule["alert"]
        assert used <= ours | RABBITMQ_METRICS, (rule["alert"], used - ours - RABBITMQ_METRICS)


def test_the_alerts_the_operator_needs_are_there_with_a_summary() -> None:
    rules = {rule["alert"]: rule for rule in _rules()}
    for needed in (
        "DomainflowDeadLettersParked",
        "DomainflowQueueWithoutConsumers",
        "DomainflowQueueGrowing",
        "RabbitmqMemoryAlarm",
        "RabbitmqDiskAlarm",
    ):
        assert rules[needed]["annotations"]["summary"]
        assert rules[needed]["labels"]["severity"] in {"warning", "critical"}
