"""The notifier's decisions, pure: whether a transition is mailed, to whom, what a row means.

The rule is "never twice": a recipient with any row in the notification log for a transition
is never sent that transition's mail again. A `sending` row (intent recorded, outcome not)
found by a later delivery therefore becomes `unconfirmed` for ops to look at, not a resend.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from domainflow.contracts import ChangeReason, DomainStatus, NotificationRequested


class Skip(StrEnum):
    """Why a transition is not mailed."""

    VERIFIED_OFF = "verified_notifications_off"
    NO_OWNERS = "no_owners"


class LogState(StrEnum):
    """One (transition, recipient) row of the notification log."""

    SENDING = "sending"  # intent committed before the SES call; outcome not yet known
    SENT = "sent"  # SES accepted it and gave a message id
    REJECTED = "rejected"  # SES answered with a permanent refusal: it did not send, and won't
    UNCONFIRMED = "unconfirmed"  # SES may or may not have sent it; never retried


class Step(StrEnum):
    """What a delivery does for one recipient, given the row it found."""

    SEND = "send"
    DONE = "done"
    MARK_UNCONFIRMED = "mark_unconfirmed"


class SendVerdict(StrEnum):
    """What a failed SES call proves."""

    RETRY = "retry"  # SES answered "not now" (throttled, 5xx) or the request never left: retry
    REJECTED = "rejected"  # SES answered "never" (bad address, ...): record it, do not retry
    UNKNOWN = "unknown"  # no answer (read timeout, connection dropped): it may have sent


def skip_reason(event: NotificationRequested, *, notify_on_verified: bool) -> Skip | None:
    """None when the transition must be mailed to its owners (the api asks only for the
    transitions the state machine says owners hear of)."""
    # The switch is for the "now verified" mail; an expiry notice on a verified domain is
    # a warning, not news of its verification.
    if (
        event.new_status is DomainStatus.VERIFIED
        and event.reason_code is not ChangeReason.REGISTRATION_EXPIRING
        and not notify_on_verified
    ):
        return Skip.VERIFIED_OFF
    if not recipients(event.owner_emails):
        return Skip.NO_OWNERS
    return None


def recipients(owner_emails: Iterable[str]) -> list[str]:
    """The owners to write to: trimmed, without blanks, each address once (case-insensitive).

    Owners' addresses come from the api (which holds the team's members) inside the internal
    event that asks for a mail; any mail to a team's owners reads them through here.
    """
    seen: set[str] = set()
    found: list[str] = []
    for raw in owner_emails:
        address = raw.strip()
        if address and address.casefold() not in seen:
            seen.add(address.casefold())
            found.append(address)
    return found


def step_for(existing: LogState | None) -> Step:
    """The step for a recipient whose log row (if any) is `existing`.

    Callers hold the transition's lock, so a `sending` row was left by a delivery that is
    no longer running: it died, or lost its database, between recording intent and
    recording the outcome. SES may have sent that mail; sending again could mail the owner
    twice, so the row is marked unconfirmed instead.
    """
    if existing is None:
        return Step.SEND
    if existing is LogState.SENDING:
        return Step.MARK_UNCONFIRMED
    return Step.DONE
