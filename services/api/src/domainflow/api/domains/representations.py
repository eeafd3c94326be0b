"""How each domain was last shown, kept per replica: a read that finds the domain where it
stood (`Domain.version`) sends the same bytes again instead of building them anew.

The hot read's own work was mostly this: the row decoded into the entity (its checks and
warnings validated), the view assembled, encoded and hashed for its ETag. Asking where the
domain stands is one narrow query, the one round trip every read makes anyway; nothing kept
is ever sent for a domain that has changed since, whichever replica changed it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from domainflow.api.domains.schemas import etag_of_encoded


@dataclass(frozen=True, slots=True)
class Shown:
    """A domain's view as GET sends it, encoded, at one version of the domain."""

    version: str
    body: bytes
    etag: str


class Representations:
    """The latest `Shown` of up to `size` domains, least recently read forgotten first
    (`size` 0: none kept, every read builds its view)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._kept: OrderedDict[str, Shown] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def at(self, public_id: str, version: str) -> Shown | None:
        """The domain as shown at `version`, if that is what is kept."""
        shown = self._kept.get(public_id)
        if shown is None or shown.version != version:
            return None
        self._kept.move_to_end(public_id)
        return shown

    def keep(self, public_id: str, version: str, body: bytes) -> Shown:
        shown = Shown(version, body, etag_of_encoded(body))
        if self._size and version:
            self._kept[public_id] = shown
            self._kept.move_to_end(public_id)
            if len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return shown
