"""The mailbox endpoints: thin, with guards that name the permission each needs."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from domainflow.api.auth import principal_of, requires
from domainflow.api.controllers import envelope
from domainflow.api.domains import Answer
from domainflow.api.mailboxes import CreateMailbox, MailboxPage, MailboxService, MailboxView
from domainflow.api.schemas import Envelope

AnyRequest = Request[Any, Any, Any]


def service_of(request: AnyRequest) -> MailboxService:
    # Stateless over the app's pool, so no lifespan wiring is needed.
    return MailboxService(request.app.state.db, request.app.state.settings)


class MailboxController(Controller):
    path = "/api/v1/mailboxes"
    tags = ("mailboxes",)

    @post("/", guards=[requires("mailbox.create")], operation_id="createMailbox", status_code=201)
    async def create(
        self, request: AnyRequest, data: JSONBody[CreateMailbox]
    ) -> Response[Envelope[MailboxView]]:
        """Add a mailbox on a verified domain of the team, or under the team's shared suffix."""
        answer = await service_of(request).create(principal_of(request), data)
        return envelope(request, answer)

    @get("/", guards=[requires("mailbox.read")], operation_id="listMailboxes")
    async def list_mailboxes(
        self,
        request: AnyRequest,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
        domain_id: FromQuery[str | None] = None,
    ) -> Response[Envelope[MailboxPage]]:
        """List the team's mailboxes, oldest first, a page at a time (filter by `domain_id`)."""
        page = await service_of(request).list(principal_of(request), cursor, limit, domain_id)
        return envelope(request, Answer(200, page))

    @get("/{public_id:str}", guards=[requires("mailbox.read")], operation_id="getMailbox")
    async def get_mailbox(
        self, request: AnyRequest, public_id: FromPath[str]
    ) -> Response[Envelope[MailboxView]]:
        """One mailbox."""
        view = await service_of(request).get(principal_of(request), public_id)
        return envelope(request, Answer(200, view))

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
        view = await service_of(request).delete(principal_of(request), public_id)
        return envelope(request, Answer(200, view))
