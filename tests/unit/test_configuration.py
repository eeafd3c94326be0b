"""Every variable in the README's configuration table is read by the settings, under its own
name, into the group and field below; and the settings read no variable the table leaves out.

`CASES` is written by hand, so that a field moved to another group, renamed, or read from
another variable fails here rather than silently taking its default in production.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices

from domainflow.api.settings import ApiSettings
from domainflow.kit.settings import ServiceSettings, SesAccount, Settings, SettingsGroup
from domainflow.notifier.settings import NotifierSettings
from domainflow.provisioner.settings import ProvisionerSettings
from domainflow.verifier.settings import VerifierSettings

README = Path(__file__).resolve().parents[2] / "README.md"

ALL: tuple[type[Settings], ...] = (
    ApiSettings,
    ProvisionerSettings,
    VerifierSettings,
    NotifierSettings,
)
A, P, V, N = ((s,) for s in ALL)
NODES = ["amqp://u:p@mq1.test:5672/", "amqp://u:p@mq2.test:5672/"]
ACCOUNTS = [
    {"name": "eu-a", "regions": ["eu-west-1"], "profile": "ses-eu-a", "identity_cap": 9000},
    {"name": "us-b", "access_key_id": "AKIAB", "secret_access_key": "s", "rate": 2.0},
]
ACCOUNTS_READ = [SesAccount.model_validate(a) for a in ACCOUNTS]
#: The value read is the value set.
SAME = object()

#: (variable, value set, value read, group.field it lands in, the settings that read it)
CASES: list[tuple[str, str, Any, str, tuple[type[Settings], ...]]] = [
    ("DOMAINFLOW_LOG_LEVEL", "DEBUG", SAME, "log.level", ALL),
    ("DOMAINFLOW_GC_YOUNG_THRESHOLD", "700", 700, "collector.young_threshold", ALL),
    ("DOMAINFLOW_GC_MIDDLE_THRESHOLD", "10", 10, "collector.middle_threshold", ALL),
    ("DOMAINFLOW_GC_OLD_THRESHOLD", "10", 10, "collector.old_threshold", ALL),
    ("DOMAINFLOW_LOG_FORMAT", "console", SAME, "log.format", ALL),
    # broker
    ("DOMAINFLOW_AMQP_URL", "amqp://u:p@mq.test:5672/", SAME, "broker.amqp_url", ALL),
    ("DOMAINFLOW_AMQP_URLS", json.dumps(NODES), NODES, "broker.amqp_urls", ALL),
    ("DOMAINFLOW_QUORUM_REPLICAS", "1", 1, "broker.quorum_replicas", ALL),
    ("DOMAINFLOW_RABBITMQ_MANAGEMENT_URL", "http://mq.test", SAME, "broker.management_url", ALL),
    ("DOMAINFLOW_QUEUE_MAX_LENGTH", "1000", 1000, "broker.queue_max_length", ALL),
    ("DOMAINFLOW_DEAD_LETTER_MAX_LENGTH", "2000", 2000, "broker.dead_letter_max_length", ALL),
    ("DOMAINFLOW_CONSUMER_PREFETCH", "4", 4, "broker.prefetch", ALL),
    ("DOMAINFLOW_REPLICA", "7", SAME, "broker.replica", ALL),
    # redelivery
    ("DOMAINFLOW_DELIVERY_LIMIT", "9", 9, "redelivery.delivery_limit", ALL),
    ("DOMAINFLOW_REDELIVERY_BACKOFF_MAX", "2.5", 2.5, "redelivery.backoff_max", ALL),
    ("DOMAINFLOW_OUTAGE_PATIENCE", "0", 0.0, "redelivery.outage_patience", ALL),
    # outbox
    ("DOMAINFLOW_OUTBOX_POLL_INTERVAL", "0.25", 0.25, "outbox.poll_interval", ALL),
    ("DOMAINFLOW_OUTBOX_BATCH_SIZE", "17", 17, "outbox.batch_size", ALL),
    ("DOMAINFLOW_OUTBOX_LEASE_SECONDS", "4", 4.0, "outbox.lease_seconds", ALL),
    # retention
    ("DOMAINFLOW_INBOX_RETENTION_DAYS", "2", 2.0, "retention.inbox_days", ALL),
    ("DOMAINFLOW_RETENTION_INTERVAL", "60", 60.0, "retention.interval", ALL),
    ("DOMAINFLOW_CHECK_HISTORY_RETENTION_DAYS", "30", 30.0, "retention.check_history_days", V),
    ("DOMAINFLOW_NOTIFICATION_RETENTION_DAYS", "31", 31.0, "retention.notification_days", N),
    # databases and start-up
    ("DOMAINFLOW_DATABASE_POOL_SIZE", "3", 3, "database.pool_size", ALL),
    ("DOMAINFLOW_API_DATABASE_URL", "postgresql://t/a", SAME, "database.url", A),
    ("DOMAINFLOW_PROVISIONER_DATABASE_URL", "postgresql://t/p", SAME, "database.url", P),
    ("DOMAINFLOW_VERIFIER_DATABASE_URL", "postgresql://t/v", SAME, "database.url", V),
    ("DOMAINFLOW_NOTIFIER_DATABASE_URL", "postgresql://t/n", SAME, "database.url", N),
    ("DOMAINFLOW_STARTUP_TIMEOUT", "5", 5.0, "startup.timeout", ALL),
    # SES's budget
    ("DOMAINFLOW_SES_RATE", "3", 3.0, "ses.rate", ALL),
    ("DOMAINFLOW_SES_SEND_RATE", "14", 14.0, "ses.send_rate", ALL),
    ("DOMAINFLOW_SES_HEADROOM", "0.2", 0.2, "ses.headroom", ALL),
    ("DOMAINFLOW_SES_QUIET_HEAD_START", "12.5", 12.5, "ses.quiet_head_start", ALL),
    ("DOMAINFLOW_SES_ACCOUNT", "second", SAME, "ses.account", ALL),
    ("DOMAINFLOW_SES_BUDGET_DATABASE_URL", "postgresql://b", SAME, "ses.budget_database_url", ALL),
    ("DOMAINFLOW_SES_ACCOUNTS", json.dumps(ACCOUNTS), ACCOUNTS_READ, "ses.accounts", ALL),
    ("DOMAINFLOW_SES_IDENTITY_MARGIN", "100", 100, "ses.identity_margin", ALL),
    ("DOMAINFLOW_SES_BATCH", "50", 50, "ses.batch", V),
    ("DOMAINFLOW_SES_TIMEOUT", "3", 3.0, "ses.timeout", V),
    # the standard AWS variables
    ("AWS_MAX_ATTEMPTS", "3", 3, "aws.max_attempts", ALL),
    ("AWS_RETRY_MODE", "adaptive", SAME, "aws.retry_mode", ALL),
    ("AWS_REGION", "eu-west-3", SAME, "notify.region", N),
    ("AWS_DEFAULT_REGION", "eu-west-2", SAME, "notify.region", N),
    # the api
    ("DOMAINFLOW_API_HOST", "0.0.0.0", SAME, "http.host", A),  # noqa: S104
    ("DOMAINFLOW_API_PORT", "9000", 9000, "http.port", A),
    ("DOMAINFLOW_API_METRICS_HOST", "10.0.0.5", SAME, "http.metrics_host", A),
    ("DOMAINFLOW_API_METRICS_PORT", "9104", 9104, "http.metrics_port", A),
    ("DOMAINFLOW_API_MAX_BODY_BYTES", "1024", 1024, "http.max_body_bytes", A),
    ("DOMAINFLOW_API_SHOWN_DOMAINS", "0", 0, "http.shown_domains", A),
    ("DOMAINFLOW_KEY_PREFIX", "acme", SAME, "keys.prefix", A),
    ("DOMAINFLOW_API_KEY_CACHE_SECONDS", "0", 0.0, "keys.cache_seconds", A),
    ("DOMAINFLOW_DOMAIN_WRITE_RATE", "0", 0.0, "write_limit.domain_write_rate", A),
    ("DOMAINFLOW_DOMAIN_WRITE_BURST", "5", 5, "write_limit.domain_write_burst", A),
    ("DOMAINFLOW_CREATE_WAIT_SECONDS", "1.5", 1.5, "waits.create_seconds", A),
    ("DOMAINFLOW_VERIFY_WAIT_SECONDS", "2.5", 2.5, "waits.verify_seconds", A),
    ("DOMAINFLOW_VERIFY_STALE_SECONDS", "60", 60.0, "waits.verify_stale_seconds", A),
    ("DOMAINFLOW_DEFAULT_REGION", "eu-west-1", SAME, "regions.default", A),
    ("DOMAINFLOW_ALLOWED_REGIONS", '["eu-west-1"]', ["eu-west-1"], "regions.allowed", A),
    ("DOMAINFLOW_RESERVED_DOMAINS", '["mine.test"]', ["mine.test"], "names.reserved_domains", A),
    ("DOMAINFLOW_SPECIAL_USE_ALLOWED", '["example"]', ["example"], "names.special_use_allowed", A),
    ("DOMAINFLOW_NOTIFY_FROM", "ops@acme.test", SAME, "names.notify_from", A),
    ("DOMAINFLOW_SHARED_MAILBOX_DOMAIN", "box.test", SAME, "names.shared_mailbox_domain", A),
    ("DOMAINFLOW_MX_TARGET", "mx.acme.test", SAME, "records.mx_target", A),
    ("DOMAINFLOW_MX_PRIORITY", "5", 5, "records.mx_priority", A),
    ("DOMAINFLOW_SPF_INCLUDES", '["amazonses.com"]', ["amazonses.com"], "records.spf_includes", A),
    ("DOMAINFLOW_DMARC_POLICY", "reject", SAME, "records.dmarc_policy", A),
    ("DOMAINFLOW_VERIFICATION_PREFIX", "_acme", SAME, "records.verification_prefix", A),
    ("DOMAINFLOW_VERIFICATION_VALUE_PREFIX", "acme=", SAME, "records.verification_value_prefix", A),
    ("DOMAINFLOW_MAIL_FROM_LABEL", "bounce", SAME, "records.mail_from_label", A),
    # the provisioner
    ("DOMAINFLOW_MAILSERVER_DATABASE_URL", "postgresql://t/m", SAME, "mailserver.database_url", P),
    ("DOMAINFLOW_MAILSERVER_ENSURE_SCHEMA", "false", False, "mailserver.ensure_schema", P),
    ("DOMAINFLOW_PROVISIONER_HEALTH_HOST", "0.0.0.0", SAME, "health.host", P),  # noqa: S104
    ("DOMAINFLOW_PROVISIONER_HEALTH_PORT", "9001", 9001, "health.port", P),
    ("DOMAINFLOW_PROVISIONER_STEP_ATTEMPTS", "4", 4, "saga.step_attempts", P),
    ("DOMAINFLOW_PROVISIONER_UNDO_ATTEMPTS", "7", 7, "saga.undo_attempts", P),
    ("DOMAINFLOW_PROVISIONER_STEP_BACKOFF", "0.1", 0.1, "saga.step_backoff", P),
    ("DOMAINFLOW_PROVISIONER_STEP_BACKOFF_MAX", "3", 3.0, "saga.step_backoff_max", P),
    ("DOMAINFLOW_PROVISIONER_STEP_TIMEOUT", "7", 7.0, "saga.step_timeout", P),
    ("DOMAINFLOW_PROVISIONER_LEASE_SECONDS", "8", 8.0, "saga.lease_seconds", P),
    ("DOMAINFLOW_PROVISIONER_RECOVERY_INTERVAL", "0.5", 0.5, "saga.recovery_interval", P),
    ("DOMAINFLOW_PROVISIONER_CONCURRENCY", "6", 6, "saga.concurrency", P),
    ("DOMAINFLOW_PROVISIONER_QUIET_ROOM", "0", 0, "saga.quiet_room", P),
    # the verifier
    ("DOMAINFLOW_VERIFIER_HEALTH_HOST", "0.0.0.0", SAME, "health.host", V),  # noqa: S104
    ("DOMAINFLOW_VERIFIER_HEALTH_PORT", "9002", 9002, "health.port", V),
    ("DOMAINFLOW_DOH_URL", "https://doh.test/dns-query", SAME, "dns.doh_url", V),
    ("DOMAINFLOW_DOH_CA_FILE", "/etc/ca.pem", SAME, "dns.doh_ca_file", V),
    ("DOMAINFLOW_DOH_TIMEOUT", "1.5", 1.5, "dns.doh_timeout", V),
    ("DOMAINFLOW_DNS_CONCURRENCY", "8", 8, "dns.concurrency", V),
    ("DOMAINFLOW_DNS_AUTHORITY_CHECK", "false", False, "dns.authority_check", V),
    ("DOMAINFLOW_DNS_AUTHORITY_PORT", "5353", 5353, "dns.authority_port", V),
    ("DOMAINFLOW_DNS_AUTHORITY_TIMEOUT", "0.5", 0.5, "dns.authority_timeout", V),
    ("DOMAINFLOW_REGISTRATION_WATCH", "false", False, "registration.watch", V),
    ("DOMAINFLOW_REGISTRATION_INTERVAL", "600", 600.0, "registration.interval", V),
    ("DOMAINFLOW_RDAP_URL", "https://rdap.test", SAME, "registration.rdap_url", V),
    ("DOMAINFLOW_RDAP_TIMEOUT", "2", 2.0, "registration.rdap_timeout", V),
    (
        "DOMAINFLOW_REGISTRATION_EXPIRY_NOTICE_DAYS",
        "45",
        45,
        "registration.expiry_notice_days",
        V,
    ),
    ("DOMAINFLOW_REVERIFY_INTERVAL", "3600", 3600.0, "reverify.interval", V),
    ("DOMAINFLOW_REVERIFY_TICK", "5", 5.0, "reverify.tick", V),
    ("DOMAINFLOW_REVERIFY_BATCH", "50", 50, "reverify.batch", V),
    ("DOMAINFLOW_REVERIFY_PARALLEL_CLAIMS", "3", 3, "reverify.parallel_claims", V),
    ("DOMAINFLOW_REVERIFY_LEASE", "30", 30.0, "reverify.lease", V),
    # the notifier
    ("DOMAINFLOW_NOTIFIER_HEALTH_HOST", "0.0.0.0", SAME, "health.host", N),  # noqa: S104
    ("DOMAINFLOW_NOTIFIER_HEALTH_PORT", "9003", 9003, "health.port", N),
    ("DOMAINFLOW_NOTIFY_FROM", "ops@acme.test", SAME, "notify.sender", N),
    ("DOMAINFLOW_NOTIFY_ON_VERIFIED", "false", False, "notify.on_verified", N),
    ("DOMAINFLOW_NOTIFY_REGION", "ap-south-1", SAME, "notify.region", N),
    ("DOMAINFLOW_NOTIFY_DASHBOARD_URL", "https://app.test/d", SAME, "notify.dashboard_url", N),
]  # fmt: skip

#: Table rows read by others: the local stack's CLI, deploy/rabbitmq-cluster.sh, botocore,
#: the OpenTelemetry SDK (its own standard variables).
NOT_THE_SERVICES = {
    "DOMAINFLOW_STATE_DIR",
    "DOMAINFLOW_SANDBOX_SES_PORT",
    "DOMAINFLOW_SANDBOX_DOH_PORT",
    "DOMAINFLOW_SANDBOX_SES_QUOTAS",
    "DOMAINFLOW_SANDBOX_SES_QUOTA_PORT",
    "DOMAINFLOW_SANDBOX_SES_ACCOUNTS",
    "DOMAINFLOW_RABBITMQ_CLUSTER_DIR",
    "DOMAINFLOW_RABBITMQ_CLUSTER_NAME",
    "DOMAINFLOW_RABBITMQ_CLUSTER_PORTS",
    "DOMAINFLOW_RABBITMQ_CLUSTER_DIST_PORTS",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
}


def _documented() -> set[str]:
    text = README.read_text(encoding="utf-8")
    table = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    # A row's first cell names its variables; the others may mention variables in passing.
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def _variables(alias: object) -> list[str]:
    if isinstance(alias, str):
        return [alias]
    assert isinstance(alias, AliasChoices), alias
    return [str(choice) for choice in alias.choices]


def _read(settings: type[Settings]) -> set[tuple[str, str]]:
    """(variable, group.field) of every variable `settings` reads."""
    read = set()
    for group_name, group_field in settings.model_fields.items():
        group = group_field.annotation
        assert isinstance(group, type), group_name
        assert issubclass(group, SettingsGroup), group_name
        for name, field in group.model_fields.items():
            assert field.validation_alias is not None, f"{group.__name__}.{name} names no variable"
            read |= {(v, f"{group_name}.{name}") for v in _variables(field.validation_alias)}
    return read


def _at(settings: Settings, path: str) -> Any:
    group, field = path.split(".")
    return getattr(getattr(settings, group), field)


def test_the_cases_are_every_variable_the_settings_read() -> None:
    read = {(s, variable, path) for s in ALL for variable, path in _read(s)}
    listed = {(s, variable, path) for variable, _, _, path, readers in CASES for s in readers}
    assert read == listed


def test_the_table_names_every_variable_read_and_no_other() -> None:
    read = {variable for s in ALL for variable, _ in _read(s)}
    assert read - _documented() == set(), "read but not in the README's table"
    assert _documented() - read - NOT_THE_SERVICES == set(), "in the table but read by nobody"


def test_every_service_reads_the_kit_groups() -> None:
    kit = _read(ServiceSettings)
    for settings in ALL:
        assert kit <= _read(settings)


@pytest.mark.parametrize(
    ("variable", "raw", "expected", "path", "readers"),
    CASES,
    ids=[f"{case[0]}->{case[3]}" for case in CASES],
)
def test_setting_the_variable_changes_its_field(
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    raw: str,
    expected: Any,
    path: str,
    readers: tuple[type[Settings], ...],
) -> None:
    for other, *_ in CASES:  # a variable of the machine running the tests must not decide
        monkeypatch.delenv(other, raising=False)
    read = raw if expected is SAME else expected
    for settings in readers:
        default = _at(settings(), path)
        monkeypatch.setenv(variable, raw)
        assert _at(settings(), path) == read != default, settings.__name__
        monkeypatch.delenv(variable)


def test_a_group_given_as_keywords_reads_the_rest_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOMAINFLOW_OUTBOX_BATCH_SIZE", "17")
    built = ServiceSettings(outbox={"poll_interval": 0.25})  # as tests write it
    assert (built.outbox.poll_interval, built.outbox.batch_size) == (0.25, 17)


def test_a_misspelt_field_is_refused() -> None:
    with pytest.raises(ValueError, match="poll_intervall"):
        ServiceSettings(outbox={"poll_intervall": 0.25})
