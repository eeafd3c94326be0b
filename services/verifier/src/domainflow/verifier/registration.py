"""The registration and delegation watch, pure: what a zone's NS set and RDAP record say.

A domain moved to another DNS provider loses every record we asked for, and one whose
registration lapses stops resolving; both are seen here before they break mail. The cycle
records each zone's nameservers and its registration expiry (RDAP, RFC 9083, where the
registry publishes it) and compares with what it saw last.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from domainflow.contracts.events import DnsWarning

#: Expiry closer than this is reported, and mailed to the owners (the default of
#: `DOMAINFLOW_REGISTRATION_EXPIRY_NOTICE_DAYS`).
EXPIRY_NOTICE = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Registration:
    """What the watch knows of one zone at one time."""

    zone: str
    nameservers: tuple[str, ...]  # sorted, lower case, no trailing dot; empty when unknown
    expires_at: datetime | None


def nameserver_set(records: Sequence[str]) -> tuple[str, ...]:
    """NS answers as a comparable set: lower case, no trailing dot, sorted, unique."""
    return tuple(sorted({record.strip().rstrip(".").lower() for record in records if record}))


def rdap_expiry(document: Mapping[str, object]) -> datetime | None:
    """The `expiration` event of an RDAP domain object (RFC 9083 §4.5), if it has one."""
    events = document.get("events")
    if not isinstance(events, list):
        return None
    for event in events:
        if not isinstance(event, Mapping) or event.get("eventAction") != "expiration":
            continue
        when = event.get("eventDate")
        if isinstance(when, str):
            try:
                parsed = datetime.fromisoformat(when.replace("Z", "+00:00"))
            except ValueError:
                return None
            return parsed if parsed.tzinfo is not None else None
    return None


def watch_warnings(
    before: Registration | None,
    now: Registration,
    at: datetime,
    *,
    notice: timedelta = EXPIRY_NOTICE,
) -> list[DnsWarning]:
    """What changed or is about to: new nameservers, a registration near or past its end.

    A change is only reported between two known sets: a zone seen for the first time, or
    whose NS lookup failed (empty), is a baseline, not a move.
    """
    warnings: list[DnsWarning] = []
    moved = (
        before is not None
        and before.nameservers
        and now.nameservers
        and set(before.nameservers) != set(now.nameservers)
    )
    if moved and before is not None:
        old, new = ", ".join(before.nameservers), ", ".join(now.nameservers)
        warnings.append(
            DnsWarning(
                code="nameservers_changed",
                name=now.zone,
                found=list(now.nameservers),
                message=(
                    f"{now.zone} moved from {old} to {new}. A domain moved to another DNS "
                    "provider keeps only the records copied over: check that the MX, SPF, "
                    "DMARC, DKIM and ownership records are at the new provider."
                ),
            )
        )
    if now.expires_at is not None and now.expires_at - at < notice:
        left = (now.expires_at - at).days
        when = now.expires_at.date().isoformat()
        message = (
            f"The registration of {now.zone} expired on {when}: renew it at your registrar, "
            "or the domain stops resolving and mail to and from it fails."
            if left < 0
            else f"The registration of {now.zone} expires on {when} ({left} days left): renew "
            "it at your registrar before then, or the domain stops resolving and mail fails."
        )
        warnings.append(
            DnsWarning(
                code="registration_expiring",
                name=now.zone,
                found=[now.expires_at.isoformat()],
                message=message,
            )
        )
    return warnings
