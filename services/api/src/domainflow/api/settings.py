"""The api's settings: its database, HTTP listener, keys, wait bounds, regions, names, records."""

from functools import cached_property

import botocore.session
from pydantic import Field

from domainflow.api.domain.records import RecordSettings
from domainflow.kit.settings import (
    DEFAULT_POSTGRES,
    DatabaseSettings,
    ServiceSettings,
    SettingsGroup,
)


class ApiDatabaseSettings(DatabaseSettings):
    url: str = Field(
        default=f"{DEFAULT_POSTGRES}/domainflow_api", validation_alias="DOMAINFLOW_API_DATABASE_URL"
    )


class HttpSettings(SettingsGroup):
    """The REST API's listener."""

    host: str = Field(default="127.0.0.1", validation_alias="DOMAINFLOW_API_HOST")
    port: int = Field(default=8000, validation_alias="DOMAINFLOW_API_PORT")
    #: The operator's listener, apart from the public one: `/metrics` (and `/healthz`,
    #: `/readyz`) for Prometheus and the operator's tools, never for API clients. Loopback
    #: unless the operator opens it to the scraper's network; port `0`: one the kernel picks.
    metrics_host: str = Field(default="127.0.0.1", validation_alias="DOMAINFLOW_API_METRICS_HOST")
    metrics_port: int = Field(
        default=8004, ge=0, le=65_535, validation_alias="DOMAINFLOW_API_METRICS_PORT"
    )
    #: Largest request body accepted, in bytes; larger ones get 413.
    max_body_bytes: int = Field(default=65_536, validation_alias="DOMAINFLOW_API_MAX_BODY_BYTES")
    #: Domains whose last-sent representation a replica keeps (a few KB each), to send again
    #: while the domain stands where it was (`0`: build every read's answer anew).
    shown_domains: int = Field(default=5_000, ge=0, validation_alias="DOMAINFLOW_API_SHOWN_DOMAINS")


class KeySettings(SettingsGroup):
    """API keys."""

    #: Prefix of issued API keys: `<prefix>_<role>_<secret>`.
    prefix: str = Field(default="smx", validation_alias="DOMAINFLOW_KEY_PREFIX")
    #: Seconds an api replica remembers a recognised API key instead of looking it up on every
    #: request (`0`: look up every time). A revocation reaches every replica at once (NOTIFY);
    #: this bounds how long a replica that missed it (its listener was down) trusts the key.
    cache_seconds: float = Field(
        default=30.0, ge=0, validation_alias="DOMAINFLOW_API_KEY_CACHE_SECONDS"
    )


class WriteLimitSettings(SettingsGroup):
    """Each team's budget of domain writes, shared by every api replica."""

    #: Domain creates, verifies and deletes a team may make per second, on average (0: no
    #: limit), after a burst of `domain_write_burst`.
    domain_write_rate: float = Field(
        default=2.0, ge=0, validation_alias="DOMAINFLOW_DOMAIN_WRITE_RATE"
    )
    domain_write_burst: int = Field(
        default=50, ge=1, validation_alias="DOMAINFLOW_DOMAIN_WRITE_BURST"
    )


class WaitSettings(SettingsGroup):
    """How long a request waits for the services behind it before answering 202."""

    #: Seconds `POST /domains` waits for provisioning before answering 202.
    create_seconds: float = Field(default=20.0, validation_alias="DOMAINFLOW_CREATE_WAIT_SECONDS")
    #: Seconds `POST /domains/{id}/verify` waits for the verifier before answering 202.
    verify_seconds: float = Field(default=20.0, validation_alias="DOMAINFLOW_VERIFY_WAIT_SECONDS")
    #: A verification outstanding longer than this is presumed lost and may be requested again.
    verify_stale_seconds: float = Field(
        default=120.0, validation_alias="DOMAINFLOW_VERIFY_STALE_SECONDS"
    )


class RegionSettings(SettingsGroup):
    """The SES regions a domain may be placed in."""

    #: SES region a domain is provisioned in when the request names none.
    default: str = Field(default="us-east-1", validation_alias="DOMAINFLOW_DEFAULT_REGION")
    #: Regions a request may name; empty: the regions Amazon SES serves (from botocore's
    #: endpoint data, so an SES region added later comes with an upgrade of botocore).
    allowed: list[str] = Field(default_factory=list, validation_alias="DOMAINFLOW_ALLOWED_REGIONS")

    @cached_property
    def offered(self) -> frozenset[str]:
        """The regions a domain may be placed in."""
        if self.allowed:
            return frozenset(self.allowed)
        session = botocore.session.get_session()
        return frozenset(
            region
            for partition in ("aws", "aws-us-gov")
            for region in session.get_available_regions("sesv2", partition_name=partition)
        )


class NameSettings(SettingsGroup):
    """The names no team may add, and the operator's own."""

    #: Names no team may add, with everything beneath them, beside the operator's own (the MX
    #: host's, the shared mailbox domain's and the notification sender's registrable domains).
    reserved_domains: list[str] = Field(
        default_factory=lambda: [
            "amazonses.com",
            "amazonaws.com",
            "gmail.com",
            "googlemail.com",
            "outlook.com",
            "hotmail.com",
            "live.com",
            "yahoo.com",
            "icloud.com",
            "me.com",
            "aol.com",
            "proton.me",
            "protonmail.com",
        ],
        validation_alias="DOMAINFLOW_RESERVED_DOMAINS",
    )
    #: Special-use names (RFC 6761: `example`, `test`, ...) this deployment accepts anyway:
    #: a sandbox whose own resolver serves them. Empty in production.
    special_use_allowed: list[str] = Field(
        default_factory=list, validation_alias="DOMAINFLOW_SPECIAL_USE_ALLOWED"
    )
    #: The notifier's From address: its domain is the operator's.
    notify_from: str = Field(
        default="domainflow <notifications@domainflow.localhost>",
        validation_alias="DOMAINFLOW_NOTIFY_FROM",
    )
    #: The operator's own domain under which each team gets a mailbox suffix (seed 001).
    shared_mailbox_domain: str = Field(
        default="myagent.mx", validation_alias="DOMAINFLOW_SHARED_MAILBOX_DOMAIN"
    )


class PlacedRecordSettings(SettingsGroup):
    """The records every customer is told to place (seed 001's values by default)."""

    mx_target: str = Field(default="mail.sendmux.ai", validation_alias="DOMAINFLOW_MX_TARGET")
    mx_priority: int = Field(default=10, validation_alias="DOMAINFLOW_MX_PRIORITY")
    spf_includes: list[str] = Field(
        default_factory=lambda: ["amazonses.com", "sendmux.ai"],
        validation_alias="DOMAINFLOW_SPF_INCLUDES",
    )
    dmarc_policy: str = Field(default="quarantine", validation_alias="DOMAINFLOW_DMARC_POLICY")
    verification_prefix: str = Field(
        default="_sendmux", validation_alias="DOMAINFLOW_VERIFICATION_PREFIX"
    )
    verification_value_prefix: str = Field(
        default="sendmux-verify=", validation_alias="DOMAINFLOW_VERIFICATION_VALUE_PREFIX"
    )
    #: The label of every domain's custom MAIL FROM subdomain (`send.mail.acme.com`), unless
    #: the request names its own (`mail_from`).
    mail_from_label: str = Field(default="send", validation_alias="DOMAINFLOW_MAIL_FROM_LABEL")

    @cached_property
    def rules(self) -> RecordSettings:
        """What every customer is told to place, as the record derivation takes it."""
        return RecordSettings(
            mx_target=self.mx_target,
            mx_priority=self.mx_priority,
            spf_includes=tuple(self.spf_includes),
            dmarc_policy=self.dmarc_policy,
            verification_prefix=self.verification_prefix,
            verification_value_prefix=self.verification_value_prefix,
            mail_from_label=self.mail_from_label,
        )


class ApiSettings(ServiceSettings):
    database: ApiDatabaseSettings = Field(default_factory=ApiDatabaseSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    keys: KeySettings = Field(default_factory=KeySettings)
    write_limit: WriteLimitSettings = Field(default_factory=WriteLimitSettings)
    waits: WaitSettings = Field(default_factory=WaitSettings)
    regions: RegionSettings = Field(default_factory=RegionSettings)
    names: NameSettings = Field(default_factory=NameSettings)
    records: PlacedRecordSettings = Field(default_factory=PlacedRecordSettings)
