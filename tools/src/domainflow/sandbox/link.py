"""A loopback TCP link to a real server that a test can cut and restore: the server going
away (a restart, a network cut) and coming back, without touching the server other tests
share."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit

from domainflow.sandbox.ports import listening_port


class CuttableLink:
    """Forwards a port of its own to `target` (a URL's host and port) while it is up."""

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 0)
        self.port = listening_port()
        self._server: asyncio.Server | None = None
        self._streams: set[asyncio.StreamWriter] = set()

    def url_for(self, target_url: str) -> str:
        """`target_url` with its host and port swapped for the link's."""
        parts = urlsplit(target_url)
        userinfo, _, _ = parts.netloc.rpartition("@")
        where = f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=f"{userinfo}@{where}" if userinfo else where))

    async def up(self) -> None:
        """Accept connections (again); until then every connection is refused."""
        if self._server is None:
            self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Refuse new connections and drop every open one, both ways."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for stream in list(self._streams):
            stream.transport.abort()
        self._streams.clear()

    async def _forward(
        self, inbound: asyncio.StreamReader, to_client: asyncio.StreamWriter
    ) -> None:
        try:
            from_server, to_server = await asyncio.open_connection(*self.target)
        except OSError:
            to_client.transport.abort()
            return
        self._streams.update((to_client, to_server))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while chunk := await source.read(65536):
                    sink.write(chunk)
                    await sink.drain()
            sink.transport.abort()
            self._streams.discard(sink)

        await asyncio.gather(pipe(inbound, to_server), pipe(from_server, to_client))
