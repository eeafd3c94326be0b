"""Settings every service reads from the same `DOMAINFLOW_*` environment variables.

Each service extends `ServiceSettings` with its own fields; the README's configuration
table lists them all. Defaults run on a development machine as it comes.
"""

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOMAINFLOW_", extra="ignore", frozen=True)

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    #: The nodes of a RabbitMQ cluster, a JSON list of AMQP URLs. When set it replaces
    #: `amqp_url`, and a replica that loses its node connects to the next one.
    amqp_urls: list[str] = Field(default_factory=list)
    #: Cluster nodes holding a copy of each quorum queue (RabbitMQ places no more than there
    #: are nodes, so one node works too). `0` declares queues without the argument, as
    #: before this setting existed: RabbitMQ refuses to redeclare a queue with another value.
    quorum_replicas: int = Field(default=3, ge=0)
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    #: Redeliveries of one message before it is parked in its queue's `.dlq`.
    delivery_limit: int = 5
    #: Messages each consumer of a replica handles at once (unacknowledged in flight).
    consumer_prefetch: int = Field(default=32, ge=1)
    #: Longest pause between redeliveries of a failing message, in seconds.
    redelivery_backoff_max: float = 30.0
    #: Seconds a consumer retries, in place, an event whose handler failed because PostgreSQL
    #: or the network is unreachable, before handing it back to RabbitMQ (`0`: at once).
    #: Handed back, it counts against `delivery_limit`, and a restart longer than the
    #: redelivery pauses would park every event in flight as if each were poison.
    outage_patience: float = Field(default=300.0, ge=0)
    #: The relay wakes on NOTIFY; this poll is the safety net for a missed one.
    outbox_poll_interval: float = 1.0
    outbox_batch_size: int = 200
    #: Seconds a relay holds claimed outbox rows before another replica may take them.
    outbox_lease_seconds: float = 30.0
    #: Days a processed event's id is kept to drop a redelivery of it (they come in minutes).
    inbox_retention_days: float = Field(default=7.0, gt=0)
    #: Seconds between trims of the tables that grow with every event.
    retention_interval: float = Field(default=3600.0, gt=0)
    #: Database connections per service replica.
    database_pool_size: int = 10
    #: Seconds a starting replica keeps trying to reach PostgreSQL and RabbitMQ before it
    #: gives up (`0`: one try). Services started together with their servers (a reboot,
    #: `docker compose up`) wait for them instead of dying and leaning on a restart policy.
    startup_timeout: float = Field(default=60.0, ge=0)
    #: RabbitMQ's management HTTP API, where each replica puts its queues' policies
    #: (empty: the AMQP host, port 15672, with the AMQP URL's credentials).
    rabbitmq_management_url: str = ""
    #: Messages a work queue holds before RabbitMQ refuses more (the outbox keeps them).
    queue_max_length: int = Field(default=1_000_000, ge=1)
    #: Messages a dead-letter queue holds before RabbitMQ refuses more.
    dead_letter_max_length: int = Field(default=1_000_000, ge=1)
    #: This replica's name in RabbitMQ's connection list, `<service>@<host>#<replica>`
    #: (empty: the process id).
    replica: str = ""

    @property
    def broker_urls(self) -> list[str]:
        """The RabbitMQ nodes to connect to, in order of preference."""
        return list(self.amqp_urls) or [self.amqp_url]

    #: Amazon SES's quotas, one budget per account and region shared by every caller in every
    #: service and replica: requests a second for every action but sending (SES: 1)...
    ses_rate: float = Field(default=1.0, gt=0)
    #: ...and mails a second (the account's sending rate: 1 in the sandbox, 14 or more in
    #: production).
    ses_send_rate: float = Field(default=1.0, gt=0)
    #: Share of each SES quota the budget leaves unused: SES judges a call when it arrives,
    #: and a call that leaves a few milliseconds late must not land on the next one's heels.
    ses_headroom: float = Field(default=0.05, ge=0, lt=1)
    #: Names the SES account in the budget's key: set it when several accounts are used.
    ses_account: str = "default"
    #: The database holding the budget's slots; every replica of every service that calls
    #: SES must reach the same one (created and migrated on start).
    ses_budget_database_url: str = f"{DEFAULT_POSTGRES}/domainflow_ses_budget"
