"""The verifier's settings: its database, the DoH resolver, the re-check cadence, SES budget."""

from pydantic import Field

from domainflow.kit.settings import (
    DEFAULT_POSTGRES,
    DatabaseSettings,
    RetentionSettings,
    ServiceSettings,
    SesSettings,
    SettingsGroup,
)


class VerifierDatabaseSettings(DatabaseSettings):
    url: str = Field(
        default=f"{DEFAULT_POSTGRES}/domainflow_verifier",
        validation_alias="DOMAINFLOW_VERIFIER_DATABASE_URL",
    )


class VerifierHealthSettings(SettingsGroup):
    """Where `/healthz`, `/readyz` and `/metrics` are served."""

    host: str = Field(default="127.0.0.1", validation_alias="DOMAINFLOW_VERIFIER_HEALTH_HOST")
    port: int = Field(default=8002, validation_alias="DOMAINFLOW_VERIFIER_HEALTH_PORT")


class DnsSettings(SettingsGroup):
    """How records are looked up: the DoH resolver, and the zones' own nameservers."""

    #: RFC 8484 endpoint the four non-DKIM records are looked up through.
    doh_url: str = Field(
        default="https://cloudflare-dns.com/dns-query", validation_alias="DOMAINFLOW_DOH_URL"
    )
    #: CA bundle that signs the resolver's certificate; unset trusts the system store.
    doh_ca_file: str | None = Field(default=None, validation_alias="DOMAINFLOW_DOH_CA_FILE")
    #: Seconds one DoH query may take before it counts as a timeout (inconclusive).
    doh_timeout: float = Field(default=5.0, validation_alias="DOMAINFLOW_DOH_TIMEOUT")
    #: DoH queries in flight at once in one replica.
    concurrency: int = Field(default=64, validation_alias="DOMAINFLOW_DNS_CONCURRENCY")
    #: Ask a failing record's zone's own nameservers too (propagating, delegated zones).
    authority_check: bool = Field(default=True, validation_alias="DOMAINFLOW_DNS_AUTHORITY_CHECK")
    #: The port those nameservers are asked on (53; a test sandbox's authority has its own).
    authority_port: int = Field(
        default=53, gt=0, lt=65536, validation_alias="DOMAINFLOW_DNS_AUTHORITY_PORT"
    )
    #: Seconds one question to a zone's nameserver may take.
    authority_timeout: float = Field(
        default=2.0, gt=0, validation_alias="DOMAINFLOW_DNS_AUTHORITY_TIMEOUT"
    )


class RegistrationSettings(SettingsGroup):
    """The watch on each zone's nameservers and registration expiry."""

    #: Watch each zone's nameservers (and expiry, with an RDAP service) in the cycle.
    watch: bool = Field(default=True, validation_alias="DOMAINFLOW_REGISTRATION_WATCH")
    #: Seconds between two looks at one zone's nameservers and registration.
    interval: float = Field(
        default=86_400.0, gt=0, validation_alias="DOMAINFLOW_REGISTRATION_INTERVAL"
    )
    #: RDAP service asked for registration expiry (`{url}/domain/{zone}`); empty: not asked.
    rdap_url: str = Field(default="", validation_alias="DOMAINFLOW_RDAP_URL")
    #: Seconds one RDAP request may take.
    rdap_timeout: float = Field(default=10.0, gt=0, validation_alias="DOMAINFLOW_RDAP_TIMEOUT")
    #: Days before a registration ends from which it is reported (and mailed to the owners,
    #: once per expiry date).
    expiry_notice_days: int = Field(
        default=30, gt=0, validation_alias="DOMAINFLOW_REGISTRATION_EXPIRY_NOTICE_DAYS"
    )


class ReverifySettings(SettingsGroup):
    """The scheduled re-checks of every pending and verified domain."""

    #: Seconds between two scheduled checks of one pending or verified domain (seed 001: 6 h).
    interval: float = Field(default=21_600.0, validation_alias="DOMAINFLOW_REVERIFY_INTERVAL")
    #: Seconds between two looks for due domains.
    tick: float = Field(default=30.0, validation_alias="DOMAINFLOW_REVERIFY_TICK")
    #: Due domains one claim takes; memory is bounded by this, never by the number of domains.
    batch: int = Field(default=500, validation_alias="DOMAINFLOW_REVERIFY_BATCH")
    #: Claims one replica works on at once per SES account: one waits for its SES slot while
    #: another probes DNS.
    parallel_claims: int = Field(default=2, validation_alias="DOMAINFLOW_REVERIFY_PARALLEL_CLAIMS")
    #: Seconds a replica holds claimed domains; a killed replica's claims come back after this.
    lease: float = Field(default=300.0, validation_alias="DOMAINFLOW_REVERIFY_LEASE")


class VerifierSesSettings(SesSettings):
    #: Identities per GetIdentityDkimAttributes call (SES's limit is 100).
    batch: int = Field(default=100, validation_alias="DOMAINFLOW_SES_BATCH")
    #: Seconds one SES call may take before its domains count as inconclusive.
    timeout: float = Field(default=10.0, validation_alias="DOMAINFLOW_SES_TIMEOUT")


class VerifierRetentionSettings(RetentionSettings):
    #: Days every probe's record (`check_history`) and a deleted domain's tombstone are kept.
    check_history_days: float = Field(
        default=90.0, gt=0, validation_alias="DOMAINFLOW_CHECK_HISTORY_RETENTION_DAYS"
    )


class VerifierSettings(ServiceSettings):
    database: VerifierDatabaseSettings = Field(default_factory=VerifierDatabaseSettings)
    health: VerifierHealthSettings = Field(default_factory=VerifierHealthSettings)
    dns: DnsSettings = Field(default_factory=DnsSettings)
    registration: RegistrationSettings = Field(default_factory=RegistrationSettings)
    reverify: ReverifySettings = Field(default_factory=ReverifySettings)
    ses: VerifierSesSettings = Field(default_factory=VerifierSesSettings)
    retention: VerifierRetentionSettings = Field(default_factory=VerifierRetentionSettings)
