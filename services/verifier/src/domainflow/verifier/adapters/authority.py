"""The authoritative view: find a name's zone and nameservers, and ask them directly.

The recursive DoH resolver answers from its cache; a zone's own nameservers answer with what
the zone holds now. Their difference is "published, not yet visible" (propagating). The zone is
found by asking the resolver for NS records from the name upwards, stopping at the registrable
domain; the nameservers' addresses come from the resolver too. Only answers with the AA flag
count: anything else (a referral, a lame server) is no authoritative view. Queries go over UDP
to `port` (53 in the world, the sandbox's own port in tests), over TCP when truncated.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdatatype

from domainflow.verifier.adapters.doh import EDNS_PAYLOAD, interpret_answer
from domainflow.verifier.lookups import Found, LookupResult, Unavailable

#: Nameserver addresses asked per zone, in order, before giving up.
MAX_SERVERS = 3


class Resolver(Protocol):
    async def lookup(self, name: str, rdtype: str) -> LookupResult: ...


@dataclass(frozen=True, slots=True)
class Zone:
    """Where a name's records live: the zone apex and its nameservers' (host, address)."""

    apex: str
    servers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class NoZone:
    """The zone or its nameservers could not be found through the resolver."""

    reason: str


class Authorities:
    """Asks zones' own nameservers; one per probe, so a domain's zone is found once."""

    def __init__(
        self, resolver: Resolver, registrable: str, *, port: int = 53, timeout: float = 2.0
    ) -> None:
        self._resolver = resolver
        self._registrable = registrable.rstrip(".").lower()
        self._port = port
        self._timeout = timeout
        self._zones: dict[str, Zone | NoZone] = {}
        self._ns: dict[str, LookupResult] = {}
        self._lock = asyncio.Lock()

    async def zone_of(self, name: str) -> Zone | NoZone:
        """The zone holding `name`: the nearest name at or above it with NS records."""
        async with self._lock:
            key = name.rstrip(".").lower()
            if key not in self._zones:
                self._zones[key] = await self._find_zone(key)
            return self._zones[key]

    async def _find_zone(self, name: str) -> Zone | NoZone:
        labels = name.split(".")
        candidates = [".".join(labels[i:]) for i in range(len(labels))]
        if self._registrable in candidates:
            candidates = candidates[: candidates.index(self._registrable) + 1]
        for candidate in candidates:
            if candidate not in self._ns:  # the names of one domain share their parents
                self._ns[candidate] = await self._resolver.lookup(candidate, "NS")
            answer = self._ns[candidate]
            if isinstance(answer, Unavailable):
                return NoZone(f"NS lookup for {candidate}: {answer.reason}")
            if isinstance(answer, Found) and answer.records and answer.alias is None:
                return await self._addresses(candidate, answer.records)
        return NoZone(f"no NS records at or above {name} up to {self._registrable}")

    async def _addresses(self, apex: str, hosts: tuple[str, ...]) -> Zone | NoZone:
        servers: list[tuple[str, str]] = []
        for host in sorted(hosts)[:MAX_SERVERS]:
            answer = await self._resolver.lookup(host, "A")
            if isinstance(answer, Found):
                servers.extend((host.rstrip("."), address) for address in answer.records[:1])
        if not servers:
            return NoZone(f"no address for the nameservers of {apex} ({', '.join(hosts)})")
        return Zone(apex, tuple(servers))

    async def lookup(self, name: str, rdtype: str) -> tuple[LookupResult, Zone | NoZone]:
        """What the zone's own nameservers say (the first that answers with authority)."""
        zone = await self.zone_of(name)
        if isinstance(zone, NoZone):
            return Unavailable(zone.reason), zone
        qname = dns.name.from_text(name, origin=dns.name.root)
        kind = dns.rdatatype.from_text(rdtype)
        reasons: list[str] = []
        for host, address in zone.servers:
            result = await self._ask(qname, kind, address)
            if not isinstance(result, Unavailable):
                return result, zone
            reasons.append(f"{host} ({address}): {result.reason}")
        return Unavailable("; ".join(reasons)), zone

    async def _ask(
        self, qname: dns.name.Name, kind: dns.rdatatype.RdataType, address: str
    ) -> LookupResult:
        query = dns.message.make_query(qname, kind, use_edns=0, payload=EDNS_PAYLOAD)
        query.flags &= ~dns.flags.RD  # an authority answers from its zone, never recursively
        try:
            answer = await dns.asyncquery.udp(query, address, self._timeout, port=self._port)
            if answer.flags & dns.flags.TC:
                answer = await dns.asyncquery.tcp(query, address, self._timeout, port=self._port)
        except dns.exception.Timeout:
            return Unavailable("timeout")
        except (dns.exception.DNSException, OSError) as error:
            return Unavailable(f"{error.__class__.__name__}: {error}")
        if not answer.flags & dns.flags.AA:
            return Unavailable("the answer is not authoritative")
        result, _ = interpret_answer(answer, qname, kind)
        return result
