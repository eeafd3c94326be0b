"""API keys (issue, hash, recognise) and the permissions they carry."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

DOMAIN_CREATE: Final = "domain.create"
DOMAIN_READ: Final = "domain.read"
DOMAIN_VERIFY: Final = "domain.verify"
DOMAIN_DELETE: Final = "domain.delete"
DOMAIN_UPDATE: Final = "domain.update"  # ours: a send-only domain's upgrade
MAILBOX_CREATE: Final = "mailbox.create"
MAILBOX_READ: Final = "mailbox.read"
MAILBOX_DELETE: Final = "mailbox.delete"

ALL_PERMISSIONS: Final = frozenset(
    {
        DOMAIN_CREATE,
        DOMAIN_READ,
        DOMAIN_VERIFY,
        DOMAIN_DELETE,
        DOMAIN_UPDATE,
        MAILBOX_CREATE,
        MAILBOX_READ,
        MAILBOX_DELETE,
    }
)
DOMAIN_ALL: Final = "domain.*"
MAILBOX_ALL: Final = "mailbox.*"
EVERYTHING: Final = "*"

ROLE_FULL: Final = "root:full"
ROLE_READONLY: Final = "root:readonly"
# The role's word inside the key itself ("Format: smx_root_..." in seed 000).
_ROLE_SLUGS: Final = {ROLE_FULL: "root", ROLE_READONLY: "readonly"}
ROLES: Final = frozenset(_ROLE_SLUGS)

_ALPHABET: Final = string.ascii_letters + string.digits  # base62: no separators to trip over
KEY_ID_CHARS: Final = 12  # ~71 bits: unique enough to name a key in listings and URLs
SECRET_CHARS: Final = 32  # ~190 bits, beyond the 128 that makes guessing hopeless
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,15}")


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key. `plaintext` is shown to the client once and never stored."""

    plaintext: str = field(repr=False)
    key_id: str
    hash: str


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """The public parts of a well-formed presented key."""

    role_slug: str
    key_id: str


def generate_key(prefix: str = "smx", role: str = ROLE_FULL) -> IssuedKey:
    """A fresh key `<prefix>_<role slug>_<key id><secret>`, e.g. `smx_root_AbC...`.

    The first KEY_ID_CHARS random characters double as the key's public id, so a listing can
    show `smx_root_<key id>...` and the client can match it to the key they hold; the
    SECRET_CHARS after it are never shown again.
    """
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"a key prefix is 1-16 lowercase letters or digits, not {prefix!r}")
    slug = role_slug(role)
    key_id = _random(KEY_ID_CHARS)
    plaintext = f"{prefix}_{slug}_{key_id}{_random(SECRET_CHARS)}"
    return IssuedKey(plaintext=plaintext, key_id=key_id, hash=hash_key(plaintext))


def parse_key(plaintext: str, prefix: str = "smx") -> ParsedKey | None:
    """The role slug and key id of a presented key, or None if it cannot be one of ours.

    Lets the API refuse garbage with a 401 without touching the database.
    """
    slugs = "|".join(_ROLE_SLUGS.values())
    match = re.fullmatch(
        rf"{re.escape(prefix)}_({slugs})_([A-Za-z0-9]{{{KEY_ID_CHARS}}})[A-Za-z0-9]{{{SECRET_CHARS}}}",
        plaintext,
    )
    if match is None:
        return None
    return ParsedKey(role_slug=match.group(1), key_id=match.group(2))


def hash_key(plaintext: str) -> str:
    """The stored form of a key: SHA-256, hex.

    A fast unsalted hash is right here, unlike for passwords: a key carries ~190 random bits,
    so no dictionary or precomputed table covers it and no amount of hashing speed makes
    brute force feasible. A slow KDF (bcrypt, argon2) would only add its cost to every
    request, and a salt would stop us finding the key by its hash in one indexed lookup.
    """
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def verify_key(plaintext: str, stored_hash: str) -> bool:
    """Whether a presented key matches a stored hash, compared in constant time."""
    return hmac.compare_digest(hash_key(plaintext), stored_hash)


def role_slug(role: str) -> str:
    """The word a role puts inside its keys: `root` for root:full, `readonly` for root:readonly."""
    try:
        return _ROLE_SLUGS[role]
    except KeyError:
        raise ValueError(_unknown_role(role)) from None


def permissions_for_role(role: str) -> frozenset[str]:
    """What a built-in role holds: root:full holds `*` (so permissions added later are included),
    root:readonly every `*.read` permission."""
    if role == ROLE_FULL:
        return frozenset({EVERYTHING})
    if role == ROLE_READONLY:
        return frozenset(p for p in ALL_PERMISSIONS if p.endswith(".read"))
    raise ValueError(_unknown_role(role))


def grants(held: Iterable[str], required: str) -> bool:
    """Whether the held permissions (exact, `<area>.*` or `*`) include `required`.

    `required` must be a known permission: a guard naming one that does not exist is a bug,
    and failing loudly beats denying everyone (or, worse, matching a wildcard by accident).
    """
    if required not in ALL_PERMISSIONS:
        raise ValueError(f"{required!r} is not a permission; known: {sorted(ALL_PERMISSIONS)}")
    area = required.split(".", 1)[0]
    return any(p in (required, f"{area}.*", EVERYTHING) for p in held)


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _unknown_role(role: str) -> str:
    return f"Unknown role {role!r}; the built-in roles are {', '.join(sorted(ROLES))}."


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's team and what the key may do."""

    team_pk: int
    team_public_id: str
    key_id: str
    permissions: tuple[str, ...]
