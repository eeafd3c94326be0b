"""The verifier's settings: its database, the DoH resolver, the re-check cadence, SES budget."""

from pydantic import Field

from domainflow.kit.settings import DEFAULT_POSTGRES, ServiceSettings


class VerifierSettings(ServiceSettings):
    verifier_database_url: str = f"{DEFAULT_POSTGRES}/domainflow_verifier"
    verifier_health_host: str = "127.0.0.1"
    verifier_health_port: int = 8002
    #: RFC 8484 endpoint the four non-DKIM records are looked up through.
    doh_url: str = "https://cloudflare-dns.com/dns-query"
    #: CA bundle that signs the resolver's certificate; unset trusts the system store.
    doh_ca_file: str | None = None
    #: Seconds one DoH query may take before it counts as a timeout (inconclusive).
    doh_timeout: float = 5.0
    #: DoH queries in flight at once in one replica.
    dns_concurrency: int = 64
    #: Ask a failing record's zone's own nameservers too (propagating, delegated zones).
    dns_authority_check: bool = True
    #: The port those nameservers are asked on (53; a test sandbox's authority has its own).
    dns_authority_port: int = Field(default=53, gt=0, lt=65536)
    #: Seconds one question to a zone's nameserver may take.
    dns_authority_timeout: float = Field(default=2.0, gt=0)
    #: Watch each zone's nameservers (and expiry, with an RDAP service) in the cycle.
    registration_watch: bool = True
    #: Seconds between two looks at one zone's nameservers and registration.
    registration_interval: float = Field(default=86_400.0, gt=0)
    #: RDAP service asked for registration expiry (`{url}/domain/{zone}`); empty: not asked.
    rdap_url: str = ""
    #: Seconds one RDAP request may take.
    rdap_timeout: float = Field(default=10.0, gt=0)
    #: Seconds between two scheduled checks of one pending or verified domain (seed 001: 6 h).
    reverify_interval: float = 21_600.0
    #: Seconds between two looks for due domains.
    reverify_tick: float = 30.0
    #: Due domains one claim takes; memory is bounded by this, never by the number of domains.
    reverify_batch: int = 500
    #: Claims one replica works on at once: one waits for its SES slot while another probes DNS.
    reverify_parallel_claims: int = 2
    #: Seconds a replica holds claimed domains; a killed replica's claims come back after this.
    reverify_lease: float = 300.0
    #: Identities per GetIdentityDkimAttributes call (SES's limit is 100).
    ses_batch: int = 100
    #: Days every probe's record (`check_history`) and a deleted domain's tombstone are kept.
    check_history_retention_days: float = Field(default=90.0, gt=0)
    #: Seconds one SES call may take before its domains count as inconclusive.
    ses_timeout: float = 10.0
