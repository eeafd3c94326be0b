"""Pytest fixtures: dns — a real DoH resolver (Unbound behind dnsdist) for the whole session.

`dns_sandbox` starts once per session under pytest's tmp dir and stops at the end (its
processes also die with pytest if it is killed). `dns_zones` is per test: it removes what the
test placed and brings a stopped resolver or front end back. Call the sandbox synchronously,
from the test itself: a process it starts dies with the thread that started it, so never
through `asyncio.to_thread`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

import pytest

from domainflow.contracts.events import (
    DkimRecord,
    DnsRecords,
    MailFromRecords,
    MxRecord,
    NamedRecord,
)
from domainflow.sandbox.dns import AUTHORITY, RESOLVER, DnsSandbox, RecordValue, Side


def make_records(
    domain: str, team: str = "team_abc123", *, mail_from: str | None = None
) -> DnsRecords:
    """The records seed 001 hands back for `domain` (Sendmux's values)."""
    return DnsRecords(
        mx=[MxRecord(name=domain, priority=10, target="mail.sendmux.ai")],
        spf=NamedRecord(name=domain, value="v=spf1 include:amazonses.com include:sendmux.ai ~all"),
        dmarc=NamedRecord(name=f"_dmarc.{domain}", value="v=DMARC1; p=quarantine"),
        dkim=[
            DkimRecord(name=f"tok{i}._domainkey.{domain}", value=f"tok{i}.dkim.amazonses.com")
            for i in range(1, 4)
        ],
        verification=NamedRecord(name=f"_sendmux.{domain}", value=f"sendmux-verify={team}"),
        mail_from=None
        if mail_from is None
        else MailFromRecords(
            mx=MxRecord(
                name=mail_from, priority=10, target="feedback-smtp.eu-west-1.amazonses.com"
            ),
            spf=NamedRecord(name=mail_from, value="v=spf1 include:amazonses.com ~all"),
        ),
    )


class SandboxZones:
    """One test's view of the sandbox: fresh domain names, and cleanup of what it placed."""

    def __init__(self, sandbox: DnsSandbox) -> None:
        self.sandbox = sandbox
        self._domains: set[str] = set()
        self._names: set[str] = set()

    def new_domain(self, label: str = "mail") -> str:
        """`<label>.acme-<random>.com`: a subdomain of a registrable domain no other test uses."""
        domain = f"{label}.acme-{uuid.uuid4().hex[:10]}.com"
        self._domains.add(domain.partition(".")[2])
        return domain

    def place(self, records: DnsRecords, zone_doubling: bool = False) -> None:
        self._domains.add(records.spf.name)
        self.sandbox.place(records, zone_doubling=zone_doubling)

    def set_records(
        self,
        name: str,
        rdtype: str,
        values: Sequence[RecordValue],
        ttl: int = 1,
        *,
        side: Side = RESOLVER,
    ) -> None:
        self._names.add(name)
        self.sandbox.set_records(name, rdtype, values, ttl, side=side)

    def delegate(self, zone: str, *, soa_minimum: int = 60) -> None:
        """Serve `zone` from the sandbox's authority too (see `DnsSandbox.delegate`)."""
        self._domains.add(zone)
        self.sandbox.delegate(zone, soa_minimum=soa_minimum)

    def place_at_authority(self, records: DnsRecords) -> None:
        self._domains.add(records.spf.name)
        self.sandbox.place(records, side=AUTHORITY)

    def remove_name(self, name: str) -> None:
        self.sandbox.remove_name(name)

    def cleanup(self) -> None:
        self.sandbox.thaw_frontend()
        self.sandbox.start_frontend()
        self.sandbox.start_resolver()
        self.sandbox.start_authority()
        for domain in self._domains:
            self.sandbox.remove_domain(domain)
        self.sandbox.remove_names(self._names)
        self.sandbox.remove_names(self._names, side=AUTHORITY)


@pytest.fixture(scope="session")
def dns_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsSandbox]:
    """Unbound + dnsdist DoH on free loopback ports; `doh_url` and `ca_file` reach it."""
    sandbox = DnsSandbox(tmp_path_factory.mktemp("dns-sandbox"))
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def dns_zones(dns_sandbox: DnsSandbox) -> Iterator[SandboxZones]:
    zones = SandboxZones(dns_sandbox)
    try:
        yield zones
    finally:
        zones.cleanup()
