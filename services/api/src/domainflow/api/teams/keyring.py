"""Recognising API keys on the read path's budget: one lookup per key, not one per request.

A key's team and permissions are remembered for `settings.keys.cache_seconds`. A revocation
commits a NOTIFY (teams/service.py) that every replica's listener turns into forgetting the
key at once; when the listener has been disconnected, everything is forgotten, since a
revocation may have gone unheard. Use is written back to `api_keys.last_used_at` at most once
a minute per key, off the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from dataclasses import dataclass

from domainflow.api.domain.keys import Principal, hash_key
from domainflow.api.teams.service import REVOKED_CHANNEL
from domainflow.api.unit_of_work import UnitOfWork
from domainflow.kit.listener import ChannelListener
from domainflow.kit.logging import get_logger

log = get_logger(__name__)

_MOST_REMEMBERED = 10_000  # keys; the least recently seen is forgotten first
_TOUCH_EVERY = 60.0  # seconds between writes of one key's last_used_at
_FLUSH_EVERY = 5.0  # seconds between batches of those writes


@dataclass(frozen=True, slots=True)
class _Remembered:
    principal: Principal
    until: float


class KeyRing:
    def __init__(self, uow: UnitOfWork, database_url: str, *, remember_seconds: float) -> None:
        self._uow = uow
        self._ttl = remember_seconds
        self._known: OrderedDict[str, _Remembered] = OrderedDict()
        self._touched: dict[str, float] = {}
        self._to_touch: set[str] = set()
        self._listener = ChannelListener(
            database_url, REVOKED_CHANNEL, self.forget, self._known.clear
        )
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._listener.start()
        self._flusher = asyncio.create_task(self._flush_forever(), name="keyring-touch")

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
        await self._listener.stop()

    async def principal(self, token: str) -> Principal | None:
        """Who holds this key, or None for a key that is unknown or revoked."""
        key_hash = hash_key(token)
        now = time.monotonic()
        known = self._known.get(key_hash)
        if known is not None and known.until > now:
            self._known.move_to_end(key_hash)
            principal = known.principal
        else:
            async with self._uow.read() as work:
                record = await work.teams.key_by_hash(key_hash)
            if record is None or record.revoked:
                self._known.pop(key_hash, None)
                return None
            principal = Principal(
                record.team_pk, record.team_public_id, record.key_id, record.permissions
            )
            self._remember(key_hash, principal, now)
        if now - self._touched.get(principal.key_id, -_TOUCH_EVERY) >= _TOUCH_EVERY:
            self._touched[principal.key_id] = now
            self._to_touch.add(principal.key_id)
        return principal

    def forget(self, key_hash: str) -> None:
        self._known.pop(key_hash, None)

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key from this replica: forgotten here at once, elsewhere when notified."""
        async with self._uow.transaction() as work:
            key_hash = await work.teams.revoke_key(key_id, REVOKED_CHANNEL)
        if key_hash is not None:
            self.forget(key_hash)
        return key_hash is not None

    def _remember(self, key_hash: str, principal: Principal, now: float) -> None:
        if self._ttl <= 0:
            return
        self._known[key_hash] = _Remembered(principal, now + self._ttl)
        self._known.move_to_end(key_hash)
        while len(self._known) > _MOST_REMEMBERED:
            self._known.popitem(last=False)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_EVERY)
            await self.flush()

    async def flush(self) -> None:
        """Write the keys used since the last flush (every few seconds, and at stop)."""
        if not self._to_touch:
            return
        batch, self._to_touch = sorted(self._to_touch), set()
        try:
            async with self._uow.transaction() as work:
                await work.teams.touch_keys(batch)
        except Exception as failure:
            log.warning("keys.touch_failed", keys=len(batch), error=repr(failure))
