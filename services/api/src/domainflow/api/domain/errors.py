"""Why the api's use cases refuse: domain errors, in the domain's words.

Each carries what a caller needs to act (which field, which reason code, which domain); the
HTTP edge (`http/problems.py`) maps each class once to a status, a code and headers.
"""

from __future__ import annotations

from dataclasses import dataclass

from domainflow.contracts import DomainStatus


class Refused(Exception):  # noqa: N818 - the base of every refusal; subclasses name the reason
    """A use case declined the request; nothing was changed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NameTaken(Exception):  # noqa: N818 - what happened: another insert holds the name
    """An insert lost a race on a unique name, address or key; its transaction is void.

    Repositories raise it; use cases turn it into the refusal the race deserves.
    """


class InvalidRequest(Refused):
    """Input the use case cannot act on: `reason` is the machine code, `field` the culprit."""

    def __init__(self, reason: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field


class InvalidDomainInput(InvalidRequest):
    """A field of a domain request (name, region, MAIL FROM, extras) is not acceptable."""


class InvalidIdempotencyKey(InvalidRequest):
    def __init__(self) -> None:
        super().__init__(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 printable ASCII characters, e.g. a UUID.",
            "Idempotency-Key",
        )


class InvalidCursor(InvalidRequest):
    def __init__(self) -> None:
        super().__init__(
            "invalid_cursor",
            "The cursor is not one this API gave out; use next_cursor from the previous page.",
            "cursor",
        )


class UnsupportedChange(Refused):
    """A change a domain cannot take: another field than `mode`, or a downgrade."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class StaleVersion(Refused):
    """The client changed the domain as it was; it has changed since (If-Match)."""

    def __init__(self, public_id: str) -> None:
        super().__init__(
            f"Domain {public_id} changed since you read it; read it again and decide anew."
        )


class DomainNotFound(Refused):
    def __init__(self, public_id: str) -> None:
        # The id is not echoed: it is whatever the caller sent (a 60 KB string, markup, ...).
        super().__init__("No domain of your team has this id.")
        self.public_id = public_id


@dataclass(frozen=True)
class ClaimHow:
    """How a team claims a name another team holds: the ownership TXT with its own value,
    then a claim. The holder is never named."""

    txt_name: str
    txt_value: str
    endpoint: str = "/api/v1/domains/claims"


class DomainExists(Refused):
    """The name is held. `own_id` is the holder's id when the caller's team holds it;
    otherwise `claim` says how the caller claims it, if the name is theirs."""

    def __init__(self, name: str, own_id: str | None, claim: ClaimHow | None = None) -> None:
        if own_id is not None:
            message = f"Your team already added {name} (id {own_id})."
        elif claim is not None:
            message = (
                f"{name} is held by another team. If it is yours, publish the TXT record "
                f'{claim.txt_name} = "{claim.txt_value}" and claim it: POST {claim.endpoint} '
                f'with {{"domain": "{name}"}}.'
            )
        else:
            message = f"{name} is held by another team."
        super().__init__(message)
        self.name = name
        self.own_id = own_id
        self.claim = claim


class DomainBusy(Refused):
    """The domain is provisioning or being deleted: the request must wait for that."""

    def __init__(self, status: DomainStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class DomainInUse(Refused):
    """Mailboxes still live on the domain: they go first."""

    def __init__(self, name: str, active_mailboxes: int) -> None:
        plural = active_mailboxes != 1
        super().__init__(
            f"{active_mailboxes} active mailbox{'es' if plural else ''} still "
            f"live{'' if plural else 's'} on {name}; delete them first, then the domain."
        )
        self.active_mailboxes = active_mailboxes


class RateLimited(Refused):
    """The team spent its budget of domain writes; `retry_after` whole seconds to wait."""

    def __init__(self, retry_after: int, rate: float) -> None:
        super().__init__(
            f"Your team is adding, verifying or deleting domains faster than {rate:g} a "
            f"second; retry in {retry_after} s."
        )
        self.retry_after = retry_after


class IdempotencyKeyReused(Refused):
    def __init__(self, domain_id: str) -> None:
        super().__init__(
            "This Idempotency-Key was used for a different request; use a new key for a "
            "new request."
        )
        self.domain_id = domain_id


class DeletedSinceKeyed(Refused):
    """The domain an Idempotency-Key created was deleted since; the key is spent now."""

    def __init__(self, domain_id: str) -> None:
        super().__init__(
            f"The domain this Idempotency-Key created ({domain_id}) has since been deleted. "
            "The key is spent: send the request again, with this key or a new one, to add "
            "the domain anew."
        )
        self.domain_id = domain_id


class NoSesCapacity(Refused):
    """Every SES account serving the region is at its identity cap: nothing was created;
    the request may succeed once an operator adds an account or domains are deleted."""

    def __init__(self, region: str) -> None:
        super().__init__(
            f"No SES account serving {region} has room for another domain right now; retry later."
        )
        self.region = region


class ProvisioningFailed(Refused):
    """Provisioning failed and was undone; `cause` names the step and error class."""

    def __init__(self, domain_id: str, cause: str | None) -> None:
        super().__init__(
            "Provisioning failed and everything it had done was undone, so nothing is "
            "half-configured. Retry the same request (with the same Idempotency-Key, if you "
            "sent one) to start clean."
        )
        self.domain_id = domain_id
        self.cause = cause


# --- mailboxes ----------------------------------------------------------------------------


class InvalidAddress(InvalidRequest):
    """A mailbox address that cannot be created; `suffix` names the team's shared suffix."""

    def __init__(self, reason: str, message: str, suffix: str | None = None) -> None:
        super().__init__(reason, message, "address")
        self.suffix = suffix


class MailboxNotFound(Refused):
    def __init__(self, public_id: str) -> None:
        super().__init__("No mailbox of your team has this id.")


class MailboxExists(Refused):
    def __init__(self, address: str, own_id: str | None) -> None:
        if own_id is not None:
            message = f"Your team already has {address} (id {own_id})."
        else:
            message = f"{address} is already taken."
        super().__init__(message)
        self.own_id = own_id


class MailboxDomainMissing(Refused):
    """The address's domain is not one of the team's domains."""

    def __init__(self, domain: str, shared_domain: str) -> None:
        super().__init__(
            f"Your team has no domain {domain}. Add it and verify it, or use an address "
            f"under {shared_domain}."
        )
        self.domain = domain


class MailboxDomainNotReady(Refused):
    """The team's domain exists but takes no mailboxes now (not verified, or being deleted)."""

    def __init__(self, domain_id: str, domain: str, status: DomainStatus, message: str) -> None:
        super().__init__(message)
        self.domain_id = domain_id
        self.domain = domain
        self.status = status


class MailboxDomainSendOnly(Refused):
    """The domain sends only: nothing receives mail for it, so it hosts no mailbox."""

    def __init__(self, domain_id: str, domain: str) -> None:
        super().__init__(
            f"{domain} is a send-only domain: it receives no mail, so it hosts no mailboxes. "
            "Upgrade it to send_receive first."
        )
        self.domain_id = domain_id
        self.domain = domain


class NothingToClaim(Refused):
    """Nobody holds the name: it is added, not claimed."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Nobody holds {name}: add it with POST /api/v1/domains.")
        self.name = name


class ClaimRefused(Refused):
    """A claim that does not move the name (now): `verdict` says why (`domain/claims.py`),
    `expected_record` is the TXT the claimant must publish when it is missing."""

    def __init__(
        self,
        verdict: str,
        message: str,
        *,
        expected_record: dict[str, object] | None = None,
        active_mailboxes: int = 0,
        region: str | None = None,
    ) -> None:
        super().__init__(message)
        self.verdict = verdict
        self.expected_record = expected_record
        self.active_mailboxes = active_mailboxes
        #: The region the claimant's domain asked for (what had no SES room).
        self.region = region
