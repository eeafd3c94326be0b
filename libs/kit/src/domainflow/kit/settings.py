"""Settings every service reads from the same `DOMAINFLOW_*` environment variables, by concern.

A service's settings are groups (`settings.outbox.poll_interval`), each a `SettingsGroup` whose
fields name the variable they are read from (`validation_alias`), so a variable keeps its
name whatever group it sits in. Each service extends `ServiceSettings` with groups of its
own; the README's configuration table lists every variable. Defaults run on a development
machine as it comes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432"


class SettingsGroup(BaseSettings):
    """One concern's settings, each read from the environment variable its alias names.

    Built with keywords, a group takes its fields' own names (`OutboxSettings(poll_interval=1)`)
    and reads the rest from the environment; a misspelt keyword is refused.
    """

    # The prefix only backs a field that forgot its alias (tests/unit/test_configuration.py
    # refuses such a field).
    model_config = SettingsConfigDict(
        env_prefix="DOMAINFLOW_", extra="forbid", frozen=True, populate_by_name=True
    )


class Settings(BaseModel):
    """A service's settings: one `SettingsGroup` per concern, each read when this is built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _groups_read_the_environment(cls, data: Any) -> Any:
        # A group given as a dict (`outbox={"poll_interval": 0.2}`) is built as the group
        # itself, so its other fields still come from the environment and its keywords from
        # its field names, as when the group is given built.
        if not isinstance(data, dict):
            return data
        built = dict(data)
        for name, field in cls.model_fields.items():
            group = field.annotation
            value = built.get(name)
            if (
                isinstance(value, dict)
                and isinstance(group, type)
                and issubclass(group, SettingsGroup)
            ):
                built[name] = group(**value)
        return built


class LogSettings(SettingsGroup):
    level: str = Field(default="INFO", validation_alias="DOMAINFLOW_LOG_LEVEL")
    format: Literal["json", "console"] = Field(
        default="json", validation_alias="DOMAINFLOW_LOG_FORMAT"
    )


class BrokerSettings(SettingsGroup):
    """RabbitMQ: where it is, how queues are declared there, how this replica consumes."""

    amqp_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/", validation_alias="DOMAINFLOW_AMQP_URL"
    )
    #: The nodes of a RabbitMQ cluster, a JSON list of AMQP URLs. When set it replaces
    #: `amqp_url`, and a replica that loses its node connects to the next one.
    amqp_urls: list[str] = Field(default_factory=list, validation_alias="DOMAINFLOW_AMQP_URLS")
    #: Cluster nodes holding a copy of each quorum queue (RabbitMQ places no more than there
    #: are nodes, so one node works too). `0` declares queues without the argument, as
    #: before this setting existed: RabbitMQ refuses to redeclare a queue with another value.
    quorum_replicas: int = Field(default=3, ge=0, validation_alias="DOMAINFLOW_QUORUM_REPLICAS")
    #: RabbitMQ's management HTTP API, where each replica puts its queues' policies
    #: (empty: the AMQP host, port 15672, with the AMQP URL's credentials).
    management_url: str = Field(default="", validation_alias="DOMAINFLOW_RABBITMQ_MANAGEMENT_URL")
    #: Messages a work queue holds before RabbitMQ refuses more (the outbox keeps them).
    queue_max_length: int = Field(
        default=1_000_000, ge=1, validation_alias="DOMAINFLOW_QUEUE_MAX_LENGTH"
    )
    #: Messages a dead-letter queue holds before RabbitMQ refuses more.
    dead_letter_max_length: int = Field(
        default=1_000_000, ge=1, validation_alias="DOMAINFLOW_DEAD_LETTER_MAX_LENGTH"
    )
    #: Messages each consumer of a replica handles at once (unacknowledged in flight).
    prefetch: int = Field(default=32, ge=1, validation_alias="DOMAINFLOW_CONSUMER_PREFETCH")
    #: This replica's name in RabbitMQ's connection list, `<service>@<host>#<replica>`
    #: (empty: the process id).
    replica: str = Field(default="", validation_alias="DOMAINFLOW_REPLICA")

    @property
    def urls(self) -> list[str]:
        """The RabbitMQ nodes to connect to, in order of preference."""
        return list(self.amqp_urls) or [self.amqp_url]


class RedeliverySettings(SettingsGroup):
    """What becomes of a message whose handler fails."""

    #: Redeliveries of one message before it is parked in its queue's `.dlq`.
    delivery_limit: int = Field(default=5, validation_alias="DOMAINFLOW_DELIVERY_LIMIT")
    #: Longest pause between redeliveries of a failing message, in seconds.
    backoff_max: float = Field(default=30.0, validation_alias="DOMAINFLOW_REDELIVERY_BACKOFF_MAX")
    #: Seconds a consumer retries, in place, an event whose handler failed because PostgreSQL
    #: or the network is unreachable, before handing it back to RabbitMQ (`0`: at once).
    #: Handed back, it counts against `delivery_limit`, and a restart longer than the
    #: redelivery pauses would park every event in flight as if each were poison.
    outage_patience: float = Field(
        default=300.0, ge=0, validation_alias="DOMAINFLOW_OUTAGE_PATIENCE"
    )


class OutboxSettings(SettingsGroup):
    """The relay that publishes what a transaction recorded in the outbox."""

    #: The relay wakes on NOTIFY; this poll is the safety net for a missed one.
    poll_interval: float = Field(default=1.0, validation_alias="DOMAINFLOW_OUTBOX_POLL_INTERVAL")
    batch_size: int = Field(default=200, validation_alias="DOMAINFLOW_OUTBOX_BATCH_SIZE")
    #: Seconds a relay holds claimed outbox rows before another replica may take them.
    lease_seconds: float = Field(default=30.0, validation_alias="DOMAINFLOW_OUTBOX_LEASE_SECONDS")


class RetentionSettings(SettingsGroup):
    """How long the tables that grow with every event keep their rows."""

    #: Days a processed event's id is kept to drop a redelivery of it (they come in minutes).
    inbox_days: float = Field(default=7.0, gt=0, validation_alias="DOMAINFLOW_INBOX_RETENTION_DAYS")
    #: Seconds between trims of the tables that grow with every event.
    interval: float = Field(default=3600.0, gt=0, validation_alias="DOMAINFLOW_RETENTION_INTERVAL")


class DatabaseSettings(SettingsGroup):
    """The service's PostgreSQL database (each service's settings add its URL)."""

    #: Database connections per service replica.
    pool_size: int = Field(default=10, validation_alias="DOMAINFLOW_DATABASE_POOL_SIZE")


class StartupSettings(SettingsGroup):
    #: Seconds a starting replica keeps trying to reach PostgreSQL and RabbitMQ before it
    #: gives up (`0`: one try). Services started together with their servers (a reboot,
    #: `docker compose up`) wait for them instead of dying and leaning on a restart policy.
    timeout: float = Field(default=60.0, ge=0, validation_alias="DOMAINFLOW_STARTUP_TIMEOUT")


#: SES's limit of identities per account and region.
SES_IDENTITY_CAP = 10_000


class SesAccount(BaseModel):
    """One SES account: its name (the key domains are placed under, and its budget's), how to
    reach it (keys, a profile, or neither: the standard `AWS_*` variables), the regions it
    serves (none listed: every region offered) and its quotas (unset: `DOMAINFLOW_SES_RATE`
    and `DOMAINFLOW_SES_SEND_RATE`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    regions: list[str] = Field(default_factory=list)
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    profile: str | None = None
    #: An endpoint of its own (a proxy, a sandbox); unset: botocore's (`AWS_ENDPOINT_URL`...).
    endpoint_url: str | None = None
    identity_cap: int = Field(default=SES_IDENTITY_CAP, ge=1)
    rate: float | None = Field(default=None, gt=0)
    send_rate: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _keys_in_pairs(self) -> SesAccount:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError(f"SES account {self.name!r}: give both keys or neither")
        if self.profile is not None and self.access_key_id is not None:
            raise ValueError(f"SES account {self.name!r}: keys or a profile, not both")
        return self

    def serves(self, region: str) -> bool:
        return not self.regions or region in self.regions


class SesSettings(SettingsGroup):
    """Amazon SES's quotas: one budget per account and region shared by every caller in every
    service and replica."""

    #: Requests a second for every action but sending (SES: 1)...
    rate: float = Field(default=1.0, gt=0, validation_alias="DOMAINFLOW_SES_RATE")
    #: ...and mails a second (the account's sending rate: 1 in the sandbox, 14 or more in
    #: production).
    send_rate: float = Field(default=1.0, gt=0, validation_alias="DOMAINFLOW_SES_SEND_RATE")
    #: Share of each SES quota the budget leaves unused: SES judges a call when it arrives,
    #: and a call that leaves a few milliseconds late must not land on the next one's heels.
    headroom: float = Field(default=0.05, ge=0, lt=1, validation_alias="DOMAINFLOW_SES_HEADROOM")
    #: Seconds a quiet team's SES call (its team has nothing else waiting) is ranked ahead of
    #: when it asked, in the queue for the budget's slots: it goes before the calls of teams
    #: with a backlog, yet never before one that has waited longer than this.
    quiet_head_start: float = Field(
        default=30.0, ge=0, validation_alias="DOMAINFLOW_SES_QUIET_HEAD_START"
    )
    #: Names the SES account in the budget's key: set it when several accounts are used.
    account: str = Field(default="default", validation_alias="DOMAINFLOW_SES_ACCOUNT")
    #: The database holding the budget's slots; every replica of every service that calls
    #: SES must reach the same one (created and migrated on start).
    budget_database_url: str = Field(
        default=f"{DEFAULT_POSTGRES}/domainflow_ses_budget",
        validation_alias="DOMAINFLOW_SES_BUDGET_DATABASE_URL",
    )
    #: The SES accounts domains are placed in (a JSON list of `SesAccount`); empty: one
    #: account, `account` above, reached with the standard `AWS_*` variables, as before.
    accounts: list[SesAccount] = Field(
        default_factory=list, validation_alias="DOMAINFLOW_SES_ACCOUNTS"
    )
    #: Identities each account-region keeps free: placement treats an account-region as full
    #: this many identities below its cap.
    identity_margin: int = Field(default=0, ge=0, validation_alias="DOMAINFLOW_SES_IDENTITY_MARGIN")

    @model_validator(mode="after")
    def _accounts_named_once(self) -> SesSettings:
        names = [a.name for a in self.accounts]
        if len(set(names)) != len(names):
            raise ValueError("DOMAINFLOW_SES_ACCOUNTS names an account twice")
        return self

    def account_list(self) -> list[SesAccount]:
        """The accounts in use: the configured ones, else the one default account."""
        return list(self.accounts) or [SesAccount(name=self.account)]

    @property
    def default_account(self) -> str:
        """The account of a domain placed before accounts existed (none recorded): the one the
        standard `AWS_*` variables reach, named by `DOMAINFLOW_SES_ACCOUNT`."""
        return self.account


#: Total tries of one AWS request (the first included) unless `AWS_MAX_ATTEMPTS` says
#: otherwise: one, so that every retry of an SES call goes through the budget's slots.
DEFAULT_AWS_MAX_ATTEMPTS = 1


class AwsSettings(SettingsGroup):
    """The standard AWS SDK variables the AWS clients are built with (botocore itself reads
    credentials, region and endpoints); an empty variable counts as unset."""

    model_config = SettingsConfigDict(env_ignore_empty=True)

    max_attempts: int = Field(
        default=DEFAULT_AWS_MAX_ATTEMPTS, ge=1, validation_alias="AWS_MAX_ATTEMPTS"
    )
    retry_mode: str = Field(default="standard", validation_alias="AWS_RETRY_MODE")


class CollectorSettings(SettingsGroup):
    """How often the garbage collector runs in a service (kit/collector.py): CPython's
    generation thresholds, spaced wider than its defaults (700, 10, 10)."""

    #: Net allocations between collections of the youngest objects.
    young_threshold: int = Field(
        default=20_000, ge=1, validation_alias="DOMAINFLOW_GC_YOUNG_THRESHOLD"
    )
    #: Young collections between collections of the middle generation...
    middle_threshold: int = Field(
        default=50, ge=1, validation_alias="DOMAINFLOW_GC_MIDDLE_THRESHOLD"
    )
    #: ...and middle collections between full ones.
    old_threshold: int = Field(default=100, ge=1, validation_alias="DOMAINFLOW_GC_OLD_THRESHOLD")


class ServiceSettings(Settings):
    """What every service reads; each service's settings add the groups of its own concerns."""

    log: LogSettings = Field(default_factory=LogSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    redelivery: RedeliverySettings = Field(default_factory=RedeliverySettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    startup: StartupSettings = Field(default_factory=StartupSettings)
    ses: SesSettings = Field(default_factory=SesSettings)
    aws: AwsSettings = Field(default_factory=AwsSettings)
    collector: CollectorSettings = Field(default_factory=CollectorSettings)
