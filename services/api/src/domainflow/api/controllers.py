"""The REST endpoints: thin controllers whose guards read as seed 001's permission table."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, MediaType, Request, Response, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from domainflow.api.auth import principal_of, requires
from domainflow.api.domain.records import to_bind
from domainflow.api.domains import Answer, DomainService
from domainflow.api.errors import ApiError, request_id_of
from domainflow.api.presenters import records_view
from domainflow.api.schemas import (
    CreateDomain,
    DeletionView,
    DnsRecordsView,
    DomainPage,
    DomainView,
    Envelope,
    Meta,
    TimelinePage,
    VerificationView,
)

AnyRequest = Request[Any, Any, Any]


def envelope(request: AnyRequest, answer: Answer) -> Response[Any]:
    headers = {"Location": answer.location} if answer.location else None
    return Response(
        Envelope(ok=True, data=answer.data, meta=Meta(request_id=request_id_of(request))),
        status_code=answer.status,
        headers=headers,
    )


def service_of(request: AnyRequest) -> DomainService:
    service: DomainService = request.app.state.domains
    return service


class DomainController(Controller):
    path = "/api/v1/domains"
    tags = ["domains"]  # noqa: RUF012 - Litestar declares it as a plain attribute

    @post("/", guards=[requires("domain.create")], operation_id="createDomain", status_code=201)
    async def create(
        self, request: AnyRequest, data: JSONBody[CreateDomain]
    ) -> Response[Envelope[DomainView]]:
        """Add a sending domain; answers with every DNS record to place.

        201 once provisioned; 202 when provisioning outlives the wait bound.
        """
        answer = await service_of(request).create(
            principal_of(request),
            data,
            request_id_of(request),
            request.headers.get("idempotency-key"),
        )
        return envelope(request, answer)

    @get("/", guards=[requires("domain.read")], operation_id="listDomains")
    async def list_domains(
        self,
        request: AnyRequest,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
        status: FromQuery[str | None] = None,
    ) -> Response[Envelope[DomainPage]]:
        """List the team's domains, oldest first, a page at a time (filter by `status`)."""
        page = await service_of(request).list(principal_of(request), cursor, limit, status)
        return envelope(request, Answer(200, page))

    @get("/{public_id:str}", guards=[requires("domain.read")], operation_id="getDomain")
    async def get_domain(
        self, request: AnyRequest, public_id: FromPath[str]
    ) -> Response[Envelope[DomainView]]:
        """One domain with its records, status and last verification results."""
        view = await service_of(request).get(principal_of(request), public_id)
        return envelope(request, Answer(200, view))

    @get("/{public_id:str}/timeline", guards=[requires("domain.read")], operation_id="getTimeline")
    async def timeline(
        self,
        request: AnyRequest,
        public_id: FromPath[str],
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
    ) -> Response[Envelope[TimelinePage]]:
        """What happened to the domain, newest first: every change, with why and which request."""
        page = await service_of(request).timeline(principal_of(request), public_id, cursor, limit)
        return envelope(request, Answer(200, page))

    @get(
        "/{public_id:str}/dns-records",
        guards=[requires("domain.read")],
        operation_id="getDomainDnsRecords",
    )
    async def dns_records(
        self,
        request: AnyRequest,
        public_id: FromPath[str],
        format: FromQuery[str] = "json",
    ) -> Response[Any]:
        """The records to place, as JSON or (`format=bind`) a BIND zone-file fragment."""
        service = service_of(request)
        row = await service.records(principal_of(request), public_id)
        records = service.records_of(row)
        if format == "bind":
            return Response(to_bind(records), media_type=MediaType.TEXT)
        if format != "json":
            raise ApiError(400, "invalid_request", "format must be 'json' or 'bind'.")
        view: DnsRecordsView = records_view(records)
        return envelope(request, Answer(200, view))

    @post(
        "/{public_id:str}/verify",
        guards=[requires("domain.verify")],
        operation_id="verifyDomain",
        status_code=200,
    )
    async def verify(
        self, request: AnyRequest, public_id: FromPath[str]
    ) -> Response[Envelope[VerificationView]]:
        """Check the records now: MX, ownership, SPF, DMARC over DoH; DKIM from SES."""
        answer = await service_of(request).verify(
            principal_of(request), public_id, request_id_of(request)
        )
        return envelope(request, answer)

    @delete(
        "/{public_id:str}",
        guards=[requires("domain.delete")],
        operation_id="deleteDomain",
        status_code=200,
    )
    async def delete_domain(
        self, request: AnyRequest, public_id: FromPath[str]
    ) -> Response[Envelope[DeletionView]]:
        """Remove the domain from the mail server, SES and here (409 while mailboxes use it)."""
        answer = await service_of(request).delete(
            principal_of(request), public_id, request_id_of(request)
        )
        return envelope(request, answer)
