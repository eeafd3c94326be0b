"""The DNS records a customer must place for a domain, and the same as a BIND zone fragment."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from domainflow.api.domain.names import MAX_LABEL_OCTETS, DomainNameInvalid, normalize_domain
from domainflow.contracts.events import (
    DkimRecord,
    DnsRecords,
    MailFromRecords,
    MxRecord,
    NamedRecord,
)

_SPF_QUALIFIERS: Final = frozenset({"~all", "-all", "?all"})
_DMARC_POLICIES: Final = frozenset({"none", "quarantine", "reject"})
# An SES region as it appears in endpoint names: us-east-1, ap-southeast-2, us-gov-west-1.
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}")
# SES Easy DKIM tokens are 32 lowercase base32 characters; any LDH label is safe in the name.
_DKIM_TOKEN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# The team public id ends up inside a TXT value the customer copies by hand.
_TEAM_PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
# A CNAME (which www usually is) cannot share its name with the MX and TXT that MAIL FROM needs.
_RESERVED_MAIL_FROM_LABELS: Final = frozenset({"www"})
_TXT_STRING_OCTETS: Final = 255  # RFC 1035 character-string limit


@dataclass(frozen=True, slots=True)
class RecordSettings:
    """Operator settings for the records; the defaults are seed 001's values."""

    mx_target: str = "mail.sendmux.ai"
    mx_priority: int = 10
    spf_includes: tuple[str, ...] = ("amazonses.com", "sendmux.ai")
    spf_qualifier: str = "~all"
    dmarc_policy: str = "quarantine"
    verification_prefix: str = "_sendmux"
    verification_value_prefix: str = "sendmux-verify="
    mail_from_spf: str = "v=spf1 include:amazonses.com ~all"
    mail_from_mx_target: str = "feedback-smtp.{region}.amazonses.com"
    mail_from_mx_priority: int = 10
    #: The MAIL FROM subdomain's label when a domain names none (`send.mail.acme.com`).
    mail_from_label: str = "send"

    def __post_init__(self) -> None:
        # Operator mistakes should stop the service at start-up, not reach a customer's zone.
        if self.spf_qualifier not in _SPF_QUALIFIERS:
            raise ValueError(
                f"spf_qualifier must be one of {sorted(_SPF_QUALIFIERS)}, "
                f"not {self.spf_qualifier!r}"
            )
        if self.dmarc_policy not in _DMARC_POLICIES:
            raise ValueError(
                f"dmarc_policy must be one of {sorted(_DMARC_POLICIES)}, not {self.dmarc_policy!r}"
            )
        for field, priority in (
            ("mx_priority", self.mx_priority),
            ("mail_from_mx_priority", self.mail_from_mx_priority),
        ):
            if not 0 <= priority <= 65535:
                raise ValueError(f"{field} is an MX priority, 0..65535, not {priority}")
        if "{region}" not in self.mail_from_mx_target:
            raise ValueError("mail_from_mx_target must contain the {region} placeholder")
        if not self.verification_prefix.startswith("_") or "." in self.verification_prefix:
            raise ValueError(
                "verification_prefix must be one underscore label such as '_sendmux', "
                f"not {self.verification_prefix!r}"
            )
        if not self.spf_includes:
            raise ValueError("spf_includes needs at least one domain")

    @property
    def spf_value(self) -> str:
        includes = " ".join(f"include:{name}" for name in self.spf_includes)
        return f"v=spf1 {includes} {self.spf_qualifier}"

    @property
    def dmarc_value(self) -> str:
        return f"v=DMARC1; p={self.dmarc_policy}"


DEFAULT_SETTINGS: Final = RecordSettings()


def derive_records(
    domain: str,
    team_public_id: str,
    dkim_tokens: Sequence[str],
    region: str,
    settings: RecordSettings = DEFAULT_SETTINGS,
    mail_from_domain: str | None = None,
) -> DnsRecords:
    """The records for `domain` (already normalized, A-label form), in seed 001's shapes.

    `dkim_tokens` are SES's Easy DKIM tokens (three once the identity exists; none before).
    Raises ValueError on inputs that could only come from a bug or a corrupt row, since each
    of them would end up inside a DNS name or value.
    """
    if not domain or domain != domain.lower() or domain.endswith("."):
        raise ValueError(f"derive_records needs a normalized domain, not {domain!r}")
    if not _TEAM_PUBLIC_ID.fullmatch(team_public_id):
        raise ValueError(f"team public id {team_public_id!r} is not [A-Za-z0-9_-]{{1,64}}")
    for token in dkim_tokens:
        if not _DKIM_TOKEN.fullmatch(token):
            raise ValueError(f"DKIM token {token!r} is not a DNS label")
    if not _REGION.fullmatch(region):
        raise ValueError(f"{region!r} is not an AWS region name such as 'us-east-1'")
    mail_from: MailFromRecords | None = None
    if mail_from_domain is not None:
        if not mail_from_domain.endswith("." + domain):
            raise ValueError(f"MAIL FROM {mail_from_domain!r} is not a subdomain of {domain!r}")
        mail_from = MailFromRecords(
            mx=MxRecord(
                name=mail_from_domain,
                priority=settings.mail_from_mx_priority,
                target=settings.mail_from_mx_target.format(region=region),
            ),
            spf=NamedRecord(name=mail_from_domain, value=settings.mail_from_spf),
        )
    return DnsRecords(
        mx=[MxRecord(name=domain, priority=settings.mx_priority, target=settings.mx_target)],
        spf=NamedRecord(name=domain, value=settings.spf_value),
        dmarc=NamedRecord(name=f"_dmarc.{domain}", value=settings.dmarc_value),
        dkim=[
            DkimRecord(name=f"{token}._domainkey.{domain}", value=f"{token}.dkim.amazonses.com")
            for token in dkim_tokens
        ],
        verification=NamedRecord(
            name=f"{settings.verification_prefix}.{domain}",
            value=f"{settings.verification_value_prefix}{team_public_id}",
        ),
        mail_from=mail_from,
    )


def mail_from_domain_for(domain: str, label: object) -> str:
    """The custom MAIL FROM domain `<label>.<domain>` (seed 003), or DomainNameInvalid.

    SES requires the MAIL FROM domain to be a subdomain of the verified identity, so the
    customer sends one label and we append the domain. Raises with code `mail_from_invalid`.
    """
    example = f'"bounce", which gives "bounce.{domain}"'
    if not isinstance(label, str) or not label.strip():
        raise DomainNameInvalid(
            "mail_from_invalid", f"mail_from must be a subdomain label such as {example}."
        )
    if label != label.strip() or any(ch.isspace() for ch in label):
        raise DomainNameInvalid(
            "mail_from_invalid", f'Remove the spaces from mail_from: "{"".join(label.split())}".'
        )
    if label != label.lower():
        raise DomainNameInvalid(
            "mail_from_invalid", f'Send mail_from in lowercase: "{label.lower()}".'
        )
    if "." in label:
        prefix = label.removesuffix("." + domain)
        hint = f' Send "{prefix}".' if prefix != label and _LDH_LABEL.fullmatch(prefix) else ""
        raise DomainNameInvalid(
            "mail_from_invalid",
            f"mail_from is one label, not a full name; we append {domain!r} ourselves.{hint}",
        )
    if len(label) > MAX_LABEL_OCTETS or not _LDH_LABEL.fullmatch(label):
        raise DomainNameInvalid(
            "mail_from_invalid",
            f"mail_from must be 1 to {MAX_LABEL_OCTETS} lowercase letters, digits or inner "
            f"hyphens, such as {example}.",
        )
    if label in _RESERVED_MAIL_FROM_LABELS:
        raise DomainNameInvalid(
            "mail_from_invalid",
            f'"{label}" usually holds a CNAME, which cannot share its name with the MX and TXT '
            f"records MAIL FROM needs; choose another label, such as {example}.",
        )
    try:
        return normalize_domain(f"{label}.{domain}")
    except DomainNameInvalid as exc:
        raise DomainNameInvalid(
            "mail_from_invalid", f'"{label}.{domain}" is not usable: {exc.message}'
        ) from exc


def to_bind(records: DnsRecords, ttl: int = 300) -> str:
    """A BIND zone-file fragment of every record, to import at a DNS provider.

    Names are absolute (trailing dot) so the fragment means the same in any zone; TXT values
    are quoted and split into 255-octet strings; the output is pure ASCII.
    """
    if not 0 <= ttl <= 2**31 - 1:
        raise ValueError(f"a TTL is 0..2147483647 seconds, not {ttl}")
    domain = records.spf.name
    rows: list[tuple[str, str, str] | str] = []
    if records.mx:  # a send-only domain receives nothing
        rows.append("; MX: routes inbound mail to the managed mail server.")
        rows.extend((mx.name, "MX", f"{mx.priority} {_absolute(mx.target)}") for mx in records.mx)
    rows += [
        "; SPF: authorises the sending relays. Merge with any existing SPF record on this name.",
        (records.spf.name, "TXT", _txt(records.spf.value)),
        "; DMARC: you may add tags such as rua=, but keep the policy.",
        (records.dmarc.name, "TXT", _txt(records.dmarc.value)),
    ]
    if records.dkim:
        rows.append("; DKIM: Amazon SES signing keys; set to DNS only (not proxied).")
        rows.extend((d.name, "CNAME", _absolute(d.value)) for d in records.dkim)
    rows += [
        "; Ownership: proves your team controls this domain.",
        (records.verification.name, "TXT", _txt(records.verification.value)),
    ]
    if records.mail_from is not None:
        mx = records.mail_from.mx
        rows += [
            "; Custom MAIL FROM: bounce handling for Amazon SES.",
            (mx.name, "MX", f"{mx.priority} {_absolute(mx.target)}"),
            (records.mail_from.spf.name, "TXT", _txt(records.mail_from.spf.value)),
        ]
    width = max(len(_absolute(row[0])) for row in rows if isinstance(row, tuple))
    lines = [
        f"; DNS records for {domain}, generated by domainflow.",
        "; Names are absolute (they end in a dot). If your DNS provider appends your zone",
        '; to every name you enter, leave the zone off each name ("@" for the zone itself).',
        "",
    ]
    for row in rows:
        if isinstance(row, str):
            lines.append(row)
            continue
        name, rtype, rdata = row
        lines.append(f"{_absolute(name).ljust(width)} {ttl} IN {rtype.ljust(5)} {rdata}")
    return "\n".join(lines) + "\n"


def _absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _txt(value: str) -> str:
    """A TXT value as zone-file character-strings: quoted, escaped, at most 255 octets each."""
    data = value.encode("utf-8")
    chunks = [data[i : i + _TXT_STRING_OCTETS] for i in range(0, len(data), _TXT_STRING_OCTETS)]
    return " ".join(f'"{_escape(chunk)}"' for chunk in chunks or [b""])


def _escape(chunk: bytes) -> str:
    out: list[str] = []
    for octet in chunk:
        if octet in (0x22, 0x5C):  # " and \
            out.append("\\" + chr(octet))
        elif 0x20 <= octet < 0x7F:
            out.append(chr(octet))
        else:
            out.append(f"\\{octet:03d}")
    return "".join(out)
