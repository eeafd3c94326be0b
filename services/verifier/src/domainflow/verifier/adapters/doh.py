"""An RFC 8484 DNS-over-HTTPS client on aiohttp: one reused session, bounded and retried.

Queries go as GET with `?dns=<base64url wire>` and message ID 0 (RFC 8484 §4.1): GET is a
safe, idempotent request, so retrying it on a fresh connection after a dropped keep-alive is
always sound, it is the form every public resolver and dnsdist accept, and our queries are a
few dozen bytes, far from any URL limit (POST's one advantage). ID 0 keeps answers cacheable by
HTTP caches, which honour the DNS TTL anyway.

Answers become `LookupResult` values (see `domainflow.verifier.checks`): records found (CNAME
chains inside the response followed), NXDOMAIN, NODATA, or unavailable with a reason. Transport
errors, timeouts, HTTP 5xx/429 and SERVFAIL are retried with exponential backoff and jitter;
REFUSED, other HTTP errors and malformed answers are not, as asking again would not change them.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import ssl
from types import TracebackType
from typing import Self

import aiohttp
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.TXT import TXT

from domainflow.verifier.checks import txt_text
from domainflow.verifier.lookups import Found, LookupResult, NoData, NxDomain, Unavailable

CONTENT_TYPE = "application/dns-message"
#: Fits one Ethernet frame without fragmentation when the resolver forwards over UDP.
EDNS_PAYLOAD = 1232
MAX_CNAME_CHAIN = 16


#: A result, and whether asking again could change it (only for `Unavailable`).
Attempt = tuple[LookupResult, bool]


class DohResolver:
    """Looks names up through one DoH endpoint.

    `ca_file` replaces the system trust store (a private resolver's CA). `timeout` bounds one
    HTTP exchange; `attempts` bounds the tries per lookup; at most `max_concurrency` exchanges
    are in flight at once. Use as `async with DohResolver(url) as doh:` or call `close()`.
    """

    def __init__(
        self,
        url: str,
        *,
        ca_file: str | os.PathLike[str] | None = None,
        timeout: float = 5.0,
        attempts: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 2.0,
        max_concurrency: int = 64,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.url = url
        self._ssl = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._attempts = attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._max_concurrency = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop; kept for connection reuse.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=self._max_concurrency)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers={"Accept": CONTENT_TYPE},
            )
        return self._session

    async def lookup(self, name: str, rdtype: str | dns.rdatatype.RdataType) -> LookupResult:
        """What the resolver says about `name`'s `rdtype` records; never raises for DNS trouble."""
        qname = dns.name.from_text(name, origin=dns.name.root)
        kind = dns.rdatatype.from_text(rdtype) if isinstance(rdtype, str) else rdtype
        query = dns.message.make_query(qname, kind, use_edns=0, payload=EDNS_PAYLOAD)
        query.id = 0
        encoded = base64.urlsafe_b64encode(query.to_wire()).rstrip(b"=").decode("ascii")
        result: LookupResult = Unavailable("no attempt made")
        for attempt in range(self._attempts):
            if attempt:
                delay = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            result, retry = await self._exchange(encoded, query)
            if not retry:
                break
        return result

    async def _exchange(self, encoded: str, query: dns.message.Message) -> Attempt:
        async with self._slots:
            try:
                async with self._client().get(self.url, params={"dns": encoded}) as response:
                    body = await response.read()
                    status, content_type = response.status, response.content_type
            except TimeoutError:
                return (Unavailable("timeout"), True)
            except aiohttp.ClientSSLError as error:
                return (Unavailable(f"tls error: {error}"), False)
            except (aiohttp.ClientError, OSError) as error:
                return (Unavailable(f"connection error: {error.__class__.__name__}: {error}"), True)
        if status != 200:
            return (Unavailable(f"http {status}"), status >= 500 or status == 429)
        if content_type != CONTENT_TYPE:
            return (Unavailable(f"unexpected content type {content_type!r}"), False)
        try:
            answer = dns.message.from_wire(body)
        except dns.exception.DNSException as error:
            return (Unavailable(f"malformed answer: {error}"), False)
        if not query.is_response(answer):
            return (Unavailable("the answer does not match the question"), False)
        return interpret_answer(answer, query.question[0].name, query.question[0].rdtype)


def interpret_answer(
    answer: dns.message.Message, qname: dns.name.Name, kind: dns.rdatatype.RdataType
) -> Attempt:
    """What a DNS answer says about `qname`/`kind`, following CNAME chains inside it."""
    rcode = answer.rcode()
    if rcode == dns.rcode.SERVFAIL:
        return (Unavailable("servfail"), True)
    if rcode == dns.rcode.REFUSED:
        return (Unavailable("refused"), False)
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return (Unavailable(f"rcode {dns.rcode.to_text(rcode).lower()}"), False)
    if answer.flags & dns.flags.TC:
        return (Unavailable("truncated answer"), False)
    current, seen = qname, {qname}
    first_alias: str | None = None
    for _ in range(MAX_CNAME_CHAIN):
        rrset = _rrset(answer, current, kind)
        if rrset is not None:
            records = tuple(_text(rdata) for rdata in rrset)
            return Found(records, ttl=rrset.ttl, alias=first_alias), False
        alias = _rrset(answer, current, dns.rdatatype.CNAME)
        if alias is None:
            break
        current = alias[0].target
        first_alias = first_alias or current.to_text()
        if current in seen:
            break  # a CNAME loop: nothing of this type can be there
        seen.add(current)
    ttl = _negative_ttl(answer)
    if rcode == dns.rcode.NXDOMAIN:
        return NxDomain(ttl=ttl), False
    return NoData(ttl=ttl, alias=first_alias), False


def _negative_ttl(answer: dns.message.Message) -> int | None:
    """How long a resolver may cache this negative answer: min(SOA TTL, SOA minimum)."""
    for rrset in answer.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            return int(min(rrset.ttl, rrset[0].minimum))
    return None


def _rrset(
    answer: dns.message.Message, name: dns.name.Name, kind: dns.rdatatype.RdataType
) -> dns.rrset.RRset | None:
    # Name comparison is case-insensitive, as DNS wants.
    for rrset in answer.answer:
        if rrset.name == name and rrset.rdtype == kind and rrset.rdclass == dns.rdataclass.IN:
            return rrset
    return None


def _text(rdata: object) -> str:
    if isinstance(rdata, TXT):
        return txt_text(rdata.strings)
    return str(rdata)
