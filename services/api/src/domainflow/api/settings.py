"""The api's settings: its database, HTTP listener, wait bounds, and the operator's DNS records."""

from functools import cached_property

import botocore.session
from pydantic import Field

from domainflow.api.domain.records import RecordSettings
from domainflow.kit.settings import DEFAULT_POSTGRES, ServiceSettings


class ApiSettings(ServiceSettings):
    api_database_url: str = f"{DEFAULT_POSTGRES}/domainflow_api"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    #: The operator's listener, apart from the public one: `/metrics` (and `/healthz`,
    #: `/readyz`) for Prometheus and the operator's tools, never for API clients. Loopback
    #: unless the operator opens it to the scraper's network; port `0`: one the kernel picks.
    api_metrics_host: str = "127.0.0.1"
    api_metrics_port: int = Field(default=8004, ge=0, le=65_535)
    #: Domain creates, verifies and deletes a team may make per second, on average (0: no
    #: limit), after a burst of `domain_write_burst`; every api replica shares the budget.
    domain_write_rate: float = Field(default=2.0, ge=0)
    domain_write_burst: int = Field(default=50, ge=1)
    #: Largest request body accepted, in bytes; larger ones get 413.
    api_max_body_bytes: int = 65_536
    #: Seconds an api replica remembers a recognised API key instead of looking it up on every
    #: request (`0`: look up every time). A revocation reaches every replica at once (NOTIFY);
    #: this bounds how long a replica that missed it (its listener was down) trusts the key.
    api_key_cache_seconds: float = Field(default=30.0, ge=0)
    #: Prefix of issued API keys: `<prefix>_<role>_<secret>`.
    key_prefix: str = "smx"
    #: Seconds `POST /domains` waits for provisioning before answering 202.
    create_wait_seconds: float = 20.0
    #: Seconds `POST /domains/{id}/verify` waits for the verifier before answering 202.
    verify_wait_seconds: float = 20.0
    #: A verification outstanding longer than this is presumed lost and may be requested again.
    verify_stale_seconds: float = 120.0
    #: SES region a domain is provisioned in when the request names none.
    default_region: str = Field(default="us-east-1")
    #: Regions a request may name; empty: the regions Amazon SES serves (from botocore's
    #: endpoint data, so an SES region added later comes with an upgrade of botocore).
    allowed_regions: list[str] = Field(default_factory=list)
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
        ]
    )
    #: Special-use names (RFC 6761: `example`, `test`, ...) this deployment accepts anyway:
    #: a sandbox whose own resolver serves them. Empty in production.
    special_use_allowed: list[str] = Field(default_factory=list)
    #: The notifier's From address (`DOMAINFLOW_NOTIFY_FROM`): its domain is the operator's.
    notify_from: str = "domainflow <notifications@domainflow.localhost>"
    # The records every customer is told to place (seed 001's values by default).
    mx_target: str = "mail.sendmux.ai"
    mx_priority: int = 10
    spf_includes: list[str] = Field(default_factory=lambda: ["amazonses.com", "sendmux.ai"])
    dmarc_policy: str = "quarantine"
    verification_prefix: str = "_sendmux"
    verification_value_prefix: str = "sendmux-verify="
    #: The label of every domain's custom MAIL FROM subdomain (`send.mail.acme.com`), unless
    #: the request names its own (`mail_from`).
    mail_from_label: str = "send"
    #: The operator's own domain under which each team gets a mailbox suffix (seed 001).
    shared_mailbox_domain: str = "myagent.mx"

    @cached_property
    def regions(self) -> frozenset[str]:
        """The regions a domain may be placed in."""
        if self.allowed_regions:
            return frozenset(self.allowed_regions)
        session = botocore.session.get_session()
        return frozenset(
            region
            for partition in ("aws", "aws-us-gov")
            for region in session.get_available_regions("sesv2", partition_name=partition)
        )

    @cached_property
    def records(self) -> RecordSettings:
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
