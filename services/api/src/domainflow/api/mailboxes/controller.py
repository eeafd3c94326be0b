"""The mailbox endpoints: thin, with guards that name the permission each needs."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from domainflow.api.http.envelope import AnyRequest, Envelope, Listing, respond, respond_list
from domainflow.api.http.guards import principal_of, requires
from domainflow.api.http.routes import delete, get, post
from domainflow.api.mailboxes.schemas import (
    CreateMailbox,
    MailboxView,
    mailbox_view,
)
from domainflow.api.mailboxes.service import CreateMailbox as Create
from domainflow.api.mailboxes.service import MailboxService

PATH = "/api/v1/mailboxes"


def service_of(request: AnyRequest) -> MailboxService:
    service: MailboxService = request.app.state.mailboxes
    return service


class MailboxController(Controller):
    path = PATH
    tags = ("mailboxes",)

    @post("/", guards=[requires("mailbox.create")], operation_id="createMailbox", status_code=201)
    async def create(
        self, request: AnyRequest, data: JSONBody[CreateMailbox]
    ) -> Response[Envelope[MailboxView]]:
        """Add a mailbox on a verified domain of the team, or under the team's shared suffix."""
        row = await service_of(request).create(principal_of(request), Create(data.address))
        return respond(request, mailbox_view(row), 201, location=f"{PATH}/{row.public_id}")

    @get("/", guards=[requires("mailbox.read")], operation_id="listMailboxes")
    async def list_mailboxes(
        self,
        request: AnyRequest,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
        domain_id: FromQuery[str | None] = None,
    ) -> Response[Listing[MailboxView]]:
        """List the team's mailboxes, oldest first, a page at a time (filter by `domain_id`)."""
        page = await service_of(request).list(principal_of(request), cursor, limit, domain_id)
        items = [mailbox_view(r) for r in page.items]
        return respond_list(request, items, page.has_more, page.next_cursor)

    @get("/{public_id:str}", guards=[requires("mailbox.read")], operation_id="getMailbox")
    async def get_mailbox(
        self, request: AnyRequest, public_id: FromPath[str]
    ) -> Response[Envelope[MailboxView]]:
        """One mailbox."""
        row = await service_of(request).get(principal_of(request), public_id)
        return respond(request, mailbox_view(row))

    @delete(
        "/{public_id:str}",
        guards=[requires("mailbox.delete")],
        operation_id="deleteMailbox",
        status_code=200,
    )
    async def delete_mailbox(
        self, request: AnyRequest, public_id: FromPath[str]
    ) -> Response[Envelope[MailboxView]]:
        """Delete the mailbox (its address becomes free; its domain may then be deleted)."""
        row = await service_of(request).delete(principal_of(request), public_id)
        return respond(request, mailbox_view(row))
