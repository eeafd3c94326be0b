"""How `domainflow domains show` prints who holds a name: the operator's view, as JSON."""

from __future__ import annotations

from typing import Any

import msgspec

from domainflow.api.domains.operators import Holding
from domainflow.api.domains.schemas import timeline_view


def holding_view(held: Holding) -> dict[str, Any]:
    domain = held.domain
    return {
        "id": domain.public_id,
        "domain": domain.name,
        "team": {"name": held.team.name, "id": held.team.public_id, "owners": held.owners},
        "state": domain.status.value,
        "region": domain.region,
        # None: the operator's default account (DOMAINFLOW_SES_ACCOUNT).
        "ses_account": domain.ses_account,
        "created_at": domain.created_at.isoformat(),
        "verified_at": domain.verified_at.isoformat() if domain.verified_at else None,
        "last_checked_at": domain.last_checked_at.isoformat() if domain.last_checked_at else None,
        "timeline": [msgspec.to_builtins(timeline_view(line)) for line in held.timeline],
    }
