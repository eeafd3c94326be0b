"""The provisioner's settings: its database, the mail platform's database, and saga pacing."""

from pydantic import Field

from domainflow.kit.settings import (
    DEFAULT_POSTGRES,
    DatabaseSettings,
    ServiceSettings,
    SettingsGroup,
)


class ProvisionerDatabaseSettings(DatabaseSettings):
    url: str = Field(
        default=f"{DEFAULT_POSTGRES}/domainflow_provisioner",
        validation_alias="DOMAINFLOW_PROVISIONER_DATABASE_URL",
    )


class MailserverSettings(SettingsGroup):
    """The mail platform's database holding the Postfix/Dovecot virtual-domain table."""

    database_url: str = Field(
        default=f"{DEFAULT_POSTGRES}/mailserver",
        validation_alias="DOMAINFLOW_MAILSERVER_DATABASE_URL",
    )
    #: Create the virtual-domain table if missing (the local stack); in production the mail
    #: platform owns that table and this is false.
    ensure_schema: bool = Field(
        default=True, validation_alias="DOMAINFLOW_MAILSERVER_ENSURE_SCHEMA"
    )


class ProvisionerHealthSettings(SettingsGroup):
    """Where `/healthz`, `/readyz` and `/metrics` are served."""

    host: str = Field(default="127.0.0.1", validation_alias="DOMAINFLOW_PROVISIONER_HEALTH_HOST")
    port: int = Field(default=8001, validation_alias="DOMAINFLOW_PROVISIONER_HEALTH_PORT")


class SagaSettings(SettingsGroup):
    """How the provisioning saga paces, retries and shares its work between replicas."""

    #: Tries of one provisioning step before the saga gives up and compensates.
    step_attempts: int = Field(default=3, validation_alias="DOMAINFLOW_PROVISIONER_STEP_ATTEMPTS")
    #: First pause between tries of a step, in seconds; it doubles each time.
    step_backoff: float = Field(default=0.5, validation_alias="DOMAINFLOW_PROVISIONER_STEP_BACKOFF")
    #: Longest pause between tries (deprovisioning and undo retry without end, this often).
    step_backoff_max: float = Field(
        default=30.0, validation_alias="DOMAINFLOW_PROVISIONER_STEP_BACKOFF_MAX"
    )
    #: Tries of an undo, a removal or a receiving step that fail for a reason no wait mends
    #: (a refusal, a bug; outages are retried without end) before the saga stops and waits
    #: for an operator (`domainflow doctor` lists it, the domain's timeline says so).
    undo_attempts: int = Field(
        default=5, ge=1, validation_alias="DOMAINFLOW_PROVISIONER_UNDO_ATTEMPTS"
    )
    #: Longest one outside call may take before it counts as a retryable failure.
    step_timeout: float = Field(
        default=30.0, validation_alias="DOMAINFLOW_PROVISIONER_STEP_TIMEOUT"
    )
    #: Seconds a replica holds a saga; renewed while it runs, so only a dead replica loses it.
    lease_seconds: float = Field(
        default=30.0, validation_alias="DOMAINFLOW_PROVISIONER_LEASE_SECONDS"
    )
    #: How often each replica looks for sagas waiting their turn that it was not woken for
    #: (recorded by another replica, or left by one that died).
    recovery_interval: float = Field(
        default=1.0, validation_alias="DOMAINFLOW_PROVISIONER_RECOVERY_INTERVAL"
    )
    #: Sagas one replica runs at once. A few keep SES's budget busy (each waits for its slot
    #: while another makes its call); more only lengthen the queue a new team's create joins.
    concurrency: int = Field(default=2, ge=1, validation_alias="DOMAINFLOW_PROVISIONER_CONCURRENCY")
    #: Sagas of quiet teams (nothing else of theirs unfinished) one replica runs beyond
    #: `concurrency`: a quiet team's create starts at once instead of waiting for a running
    #: saga of another team's burst to finish (0: they wait like any other).
    quiet_room: int = Field(default=2, ge=0, validation_alias="DOMAINFLOW_PROVISIONER_QUIET_ROOM")


class ProvisionerSettings(ServiceSettings):
    database: ProvisionerDatabaseSettings = Field(default_factory=ProvisionerDatabaseSettings)
    mailserver: MailserverSettings = Field(default_factory=MailserverSettings)
    health: ProvisionerHealthSettings = Field(default_factory=ProvisionerHealthSettings)
    saga: SagaSettings = Field(default_factory=SagaSettings)
