"""The claims resource's view: what a claim came to, and the claimant's domain once created."""

from __future__ import annotations

from typing import Literal

import msgspec

from domainflow.api.domain.claims import Claim, ClaimVerdict

ClaimStatus = Literal["checking", "refused", "waiting", "granted", "completed"]


class ClaimView(msgspec.Struct):
    id: str
    domain: str
    #: checking: the DNS is being looked at; refused: see `reason`; waiting: for the
    #: holder's `active_mailboxes` to go (the DNS is checked again then); granted: the
    #: holder's domain is being released; completed: the name is the claimant's (`domain_id`).
    status: ClaimStatus
    reason: str | None
    domain_id: str | None
    active_mailboxes: int
    created_at: str | None


def claim_view(claim: Claim) -> ClaimView:
    if claim.verdict is None:
        status: ClaimStatus = "checking"
    elif claim.verdict is ClaimVerdict.WAITS_FOR_MAILBOXES:
        status = "waiting"
    elif claim.verdict is not ClaimVerdict.GRANTED:
        status = "refused"
    elif claim.domain_public_id is None:
        status = "granted"
    else:
        status = "completed"
    return ClaimView(
        id=claim.public_id,
        domain=claim.name,
        status=status,
        reason=claim.reason,
        domain_id=claim.domain_public_id,
        active_mailboxes=claim.active_mailboxes,
        created_at=claim.created_at.isoformat().replace("+00:00", "Z")
        if claim.created_at
        else None,
    )
