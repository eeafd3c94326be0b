"""The mailboxes resource's shapes: the request it takes and the views it answers with."""

from __future__ import annotations

import msgspec

from domainflow.api.domains.schemas import iso
from domainflow.api.mailboxes.repository import MailboxRow


class CreateMailbox(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /mailboxes` body."""

    address: object = None  # checked by hand so each mistake gets its own reason


class MailboxView(msgspec.Struct):
    id: str
    address: str
    domain: str
    #: The custom domain's id; null under the shared domain.
    domain_id: str | None
    shared: bool
    created_at: str
    deleted_at: str | None = None


def mailbox_view(row: MailboxRow) -> MailboxView:
    return MailboxView(
        id=row.public_id,
        address=row.address,
        domain=row.address.rpartition("@")[2],
        domain_id=row.domain_public_id,
        shared=row.domain_id is None,
        created_at=iso(row.created_at) or "",
        deleted_at=iso(row.deleted_at),
    )
