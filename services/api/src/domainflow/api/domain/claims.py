"""Claims, pure: whether a name another team holds moves to the team that shows it owns it.

A name is one team's at a time (one SES identity, one mail-server row per name). Whoever adds
it first holds it, proven or not; the team that can place the ownership TXT with its own
value claims it. The DNS answer is the verifier's (over DoH, like a verification): whether
the claimant's TXT and the holder's TXT are published at the ownership name. The verdict
weighs that answer against the holder's domain as it stands when the answer is applied
(under its row lock), so a claim racing the holder's own verify or delete ends in one owner.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from domainflow.api.domain.state import DomainState
from domainflow.contracts import CheckOutcome, DomainStatus


class ClaimVerdict(StrEnum):
    """What a claim comes to."""

    #: The holder is released as a DELETE would release it, and the claimant gets the name.
    GRANTED = "granted"
    #: Granted, but the holder's mailboxes go first: the claim waits for them, and is
    #: checked again once they are gone.
    WAITS_FOR_MAILBOXES = "waits_for_mailboxes"
    #: The holder proved the name and its TXT is still there: both teams' records are
    #: published, and the DNS admin must choose (remove one), then claim again.
    HOLDER_PROVEN = "holder_proven"
    #: The claimant's TXT is not published: nothing is shown, nothing moves.
    TXT_MISSING = "txt_missing"
    #: The resolver could not say (timeout, SERVFAIL), or the name changed hands while it
    #: was looked up: no evidence either way; try again.
    INCONCLUSIVE = "inconclusive"
    #: The holder's domain is being provisioned or deleted: try again once that has ended.
    HOLDER_BUSY = "holder_busy"
    #: The name was the claimant's to take, but no SES account serving its region had room
    #: for a new domain when it came to creating it: nothing was created; the name is free
    #: (the holder's domain, if any, was released) and a later create or claim may succeed.
    NO_SES_CAPACITY = "no_ses_capacity"


#: The verdicts that move the name (now or once the holder's mailboxes are gone).
MOVES: Final = frozenset({ClaimVerdict.GRANTED, ClaimVerdict.WAITS_FOR_MAILBOXES})


@dataclass(frozen=True, slots=True)
class Holder:
    """The domain that holds the name now, as the claim's answer finds it."""

    state: DomainState
    #: A verification has seen the holder's ownership TXT (`Domain.ownership_proven_at`).
    proven: bool
    active_mailboxes: int = 0


def claim_verdict(
    holder: Holder | None, *, claimant_txt: CheckOutcome, holder_txt: CheckOutcome
) -> ClaimVerdict:
    """Decide a claim. `holder` None: nobody holds the name any more (deleted meanwhile).

    - the claimant's TXT must be seen: absent refuses, unknown is inconclusive;
    - a holder being provisioned or deleted is left to finish (its sagas own the name);
    - a proven holder whose TXT is still published keeps the name; whether its TXT is
      there must be known to say so;
    - an unproven holder, or one whose TXT is gone, is released; mailboxes first.
    """
    if claimant_txt is CheckOutcome.INCONCLUSIVE:
        return ClaimVerdict.INCONCLUSIVE
    if claimant_txt is CheckOutcome.FAIL:
        return ClaimVerdict.TXT_MISSING
    if holder is None or holder.state.status is DomainStatus.DELETED:
        return ClaimVerdict.GRANTED
    if holder.state.status in (DomainStatus.PROVISIONING, DomainStatus.DELETING):
        return ClaimVerdict.HOLDER_BUSY
    if holder.proven:
        if holder_txt is CheckOutcome.INCONCLUSIVE:
            return ClaimVerdict.INCONCLUSIVE
        if holder_txt is CheckOutcome.PASS:
            return ClaimVerdict.HOLDER_PROVEN
    if holder.active_mailboxes > 0:
        return ClaimVerdict.WAITS_FOR_MAILBOXES
    return ClaimVerdict.GRANTED


def explain(verdict: ClaimVerdict, name: str, *, active_mailboxes: int = 0) -> str:
    """The sentence the claimant reads (the holder is never named)."""
    match verdict:
        case ClaimVerdict.GRANTED:
            return (
                f"Your ownership TXT is published and the team that held {name} had not "
                "proven it (or its TXT is gone): the name is now yours."
            )
        case ClaimVerdict.WAITS_FOR_MAILBOXES:
            return (
                f"Your ownership TXT is published, so {name} will move to you, but "
                f"{active_mailboxes} mailbox(es) of the team holding it still live on it; "
                "they go first. The claim waits for them and goes on once they are gone."
            )
        case ClaimVerdict.HOLDER_PROVEN:
            return (
                f"The team holding {name} has proven it and its ownership TXT is still "
                "published beside yours: whoever runs the DNS of the name must choose. Once "
                "only your TXT is published, claim again."
            )
        case ClaimVerdict.TXT_MISSING:
            return (
                f"Your ownership TXT is not published for {name}: place the record given in "
                "expected_record, then claim again."
            )
        case ClaimVerdict.INCONCLUSIVE:
            return (
                f"The ownership TXT of {name} could not be judged (the DNS resolver did not "
                "answer, or the name changed hands while it was looked up); claim again shortly."
            )
        case ClaimVerdict.HOLDER_BUSY:
            return (
                f"{name} is being provisioned or deleted for the team holding it; "
                "claim again in a minute."
            )
        case ClaimVerdict.NO_SES_CAPACITY:
            return (
                f"Your ownership TXT is published and {name} was yours to take, but no SES "
                "account serving its region has room for another domain: nothing was created "
                "for you. Add the domain (or claim it) again later."
            )


@dataclass
class Claim:
    """One team's claim on a name another team holds. `verdict` None: the DNS is being
    checked. `request` is the claimant's domain to create (checked fields, as JSON)."""

    public_id: str
    team_pk: int
    team_public_id: str
    name: str
    holder_domain_id: str
    request: dict[str, object]
    request_id: str
    check_event_id: uuid.UUID | None = None
    verdict: ClaimVerdict | None = None
    reason: str | None = None
    #: The claimant's ownership TXT check, as the verifier judged it (the expected record).
    claimant_check: dict[str, object] | None = None
    active_mailboxes: int = 0
    #: The holder's domain released for this claim, and the claimant's, once created.
    released_domain_id: str | None = None
    domain_public_id: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    pk: int = 0
    created_at: datetime | None = None

    @property
    def settled(self) -> bool:
        """Nothing more happens soon on its own: refused, waiting for the holder's mailboxes
        (that may take days), or the claimant's domain exists."""
        if self.verdict is None:
            return False
        return self.verdict is not ClaimVerdict.GRANTED or self.domain_public_id is not None
