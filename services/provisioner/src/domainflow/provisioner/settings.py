"""The provisioner's settings: its database, the mail platform's database, and saga pacing."""

from pydantic import Field

from domainflow.kit.settings import DEFAULT_POSTGRES, ServiceSettings


class ProvisionerSettings(ServiceSettings):
    provisioner_database_url: str = f"{DEFAULT_POSTGRES}/domainflow_provisioner"
    #: The mail platform's database holding the Postfix/Dovecot virtual-domain table.
    mailserver_database_url: str = f"{DEFAULT_POSTGRES}/mailserver"
    #: Create the virtual-domain table if missing (the local stack); in production the mail
    #: platform owns that table and this is false.
    mailserver_ensure_schema: bool = True
    provisioner_health_host: str = "127.0.0.1"
    provisioner_health_port: int = 8001
    #: Tries of one provisioning step before the saga gives up and compensates.
    provisioner_step_attempts: int = 3
    #: First pause between tries of a step, in seconds; it doubles each time.
    provisioner_step_backoff: float = 0.5
    #: Longest pause between tries (deprovisioning and undo retry without end, this often).
    provisioner_step_backoff_max: float = 30.0
    #: Tries of an undo, a removal or a receiving step that fail for a reason no wait mends
    #: (a refusal, a bug; outages are retried without end) before the saga stops and waits
    #: for an operator (`domainflow doctor` lists it, the domain's timeline says so).
    provisioner_undo_attempts: int = Field(default=5, ge=1)
    #: Longest one outside call may take before it counts as a retryable failure.
    provisioner_step_timeout: float = 30.0
    #: Seconds a replica holds a saga; renewed while it runs, so only a dead replica loses it.
    provisioner_lease_seconds: float = 30.0
    #: How often each replica looks for sagas waiting their turn that it was not woken for
    #: (recorded by another replica, or left by one that died).
    provisioner_recovery_interval: float = 1.0
    #: Sagas one replica runs at once. A few keep SES's budget busy (each waits for its slot
    #: while another makes its call); more only lengthen the queue a new team's create joins.
    provisioner_concurrency: int = Field(default=2, ge=1)
