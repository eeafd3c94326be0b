"""An RDAP client (RFC 9082/9083): a domain's registration expiry, where the registry says.

`base_url` is an RDAP service (a bootstrap redirector such as https://rdap.org, or a
registry's own); the client asks `{base_url}/domain/{zone}` and follows redirects. Any failure
(network, HTTP error, not JSON) is "unknown", never an error: the watch just learns nothing.
"""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Self

import aiohttp

from domainflow.kit.logging import get_logger
from domainflow.verifier.registration import rdap_expiry

log = get_logger(__name__)


class RdapClient:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
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

    async def expiry(self, zone: str) -> datetime | None:
        """When `zone`'s registration expires, or None when RDAP does not say."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"Accept": "application/rdap+json"}
            )
        url = f"{self.base_url}/domain/{zone}"
        try:
            async with self._session.get(url) as response:
                if response.status != 200:
                    log.info("rdap.no_answer", zone=zone, status=response.status)
                    return None
                document = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            log.info("rdap.unavailable", zone=zone, error=repr(error))
            return None
        return rdap_expiry(document) if isinstance(document, dict) else None
