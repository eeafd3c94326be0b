"""Mailbox addresses: checked and normalized, and each team's suffix on the shared domain."""

from __future__ import annotations

import re
from typing import Final

from domainflow.api.domain.names import DomainNameInvalid, normalize_domain

MAX_LOCAL_PART_OCTETS: Final = 64  # RFC 5321 4.5.3.1.1
MAX_ADDRESS_OCTETS: Final = 254  # RFC 5321 path limit (256) less the angle brackets
DEFAULT_SHARED_DOMAIN: Final = "myagent.mx"

# RFC 5322 atext; a dot-atom is atoms joined by single dots. Quoted local parts are refused:
# hardly any client or provider handles them well.
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
_TEAM_PREFIX = "team_"
_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class MailboxAddressInvalid(Exception):  # noqa: N818 - the domain's word for it; callers read `code`
    """An address the API cannot accept, with a machine `code` and a `message` to act on.

    Problems with the part after the @ keep `normalize_domain`'s code (`domain_*`, `label_*`).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"MailboxAddressInvalid({self.code!r}, {self.message!r})"


def normalize_address(raw: object) -> tuple[str, str]:
    """`(local_part, domain)` of a mailbox address, the domain in A-label form.

    Like domains, addresses must already be lowercase: a mailbox `Alice` beside `alice`
    would be two names for what people read as one.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise MailboxAddressInvalid("address_missing", 'Send an address, such as "bot@acme.com".')
    if not isinstance(raw, str):
        raise MailboxAddressInvalid(
            "address_not_string",
            f'The address must be a JSON string, such as "bot@acme.com", not {type(raw).__name__}.',
        )
    if any(ch.isspace() for ch in raw):
        raise MailboxAddressInvalid(
            "address_has_whitespace", f'Remove the spaces: "{"".join(raw.split())}".'
        )
    if raw.count("@") != 1:
        raise MailboxAddressInvalid(
            "address_missing_at" if "@" not in raw else "address_multiple_at",
            'An address is one local part, one "@" and a domain, such as "bot@acme.com".',
        )
    if raw != raw.lower():
        raise MailboxAddressInvalid("address_uppercase", f'Send it in lowercase: "{raw.lower()}".')
    local, _, domain_text = raw.partition("@")
    _check_local_part(local)
    try:
        domain = normalize_domain(domain_text)
    except DomainNameInvalid as exc:
        raise MailboxAddressInvalid(exc.code, f"The part after the @: {exc.message}") from exc
    octets = len(local.encode("utf-8")) + 1 + len(domain)
    if octets > MAX_ADDRESS_OCTETS:
        raise MailboxAddressInvalid(
            "address_too_long",
            f"The address is {octets} characters; an address is at most {MAX_ADDRESS_OCTETS}.",
        )
    return local, domain


def shared_suffix_domain(team_public_id: str, shared_domain: str = DEFAULT_SHARED_DOMAIN) -> str:
    """The team's own subdomain of the shared domain: `team_abc123` -> `abc123.myagent.mx`.

    Seed 001 gives shared-domain addresses as "one per team, suffix-scoped": every team gets
    one suffix beneath the shared domain, and any local part under that suffix is the team's.
    The suffix is the team's public id without its `team_` prefix ("_" becomes "-"), so it is
    stable, needs no table, and can never collide between teams. Raises ValueError for an id
    that cannot be a DNS label (a bug, since the ids are ours).
    """
    slug = team_public_id.removeprefix(_TEAM_PREFIX).replace("_", "-").lower()
    if not _SLUG.fullmatch(slug):
        raise ValueError(f"team public id {team_public_id!r} does not make a DNS label")
    try:
        return normalize_domain(f"{slug}.{shared_domain}")
    except DomainNameInvalid as exc:
        raise ValueError(f"{slug}.{shared_domain} is not a usable domain: {exc.message}") from exc


def _check_local_part(local: str) -> None:
    if not local:
        raise MailboxAddressInvalid(
            "local_part_missing", 'Put a name before the "@", as in "bot@acme.com".'
        )
    if not local.isascii():
        raise MailboxAddressInvalid(
            "local_part_invalid_characters",
            "The part before the @ must be ASCII; internationalized local parts are not supported.",
        )
    if len(local) > MAX_LOCAL_PART_OCTETS:
        raise MailboxAddressInvalid(
            "local_part_too_long",
            f"The part before the @ is {len(local)} characters; it is at most "
            f"{MAX_LOCAL_PART_OCTETS}.",
        )
    atoms = local.split(".")
    if any(not atom for atom in atoms):
        raise MailboxAddressInvalid(
            "local_part_bad_dot",
            "The part before the @ cannot start or end with a dot or have two dots in a row.",
        )
    for atom in atoms:
        if not _ATEXT.fullmatch(atom):
            bad = next(ch for ch in atom if not _ATEXT.fullmatch(ch))
            raise MailboxAddressInvalid(
                "local_part_invalid_characters",
                f'The part before the @ contains "{bad}"; use letters, digits, dots and '
                "!#$%&'*+/=?^_`{|}~- only.",
            )
