"""The domain endpoints: thin, with guards that read as seed 001's permission table.

Each route decodes, calls one use case and says what its result means in HTTP: the status
(201 or 202, 200 or 202), the `Location` of work still under way.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Response
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from domainflow.api.domain.model import Domain
from domainflow.api.domain.records import to_bind
from domainflow.api.domains.representations import Representations, Shown
from domainflow.api.domains.schemas import (
    CreateDomain,
    DeletionView,
    DnsRecordsView,
    DomainView,
    TimelinePage,
    VerificationView,
    deletion_view,
    domain_view,
    etag_of,
    records_view,
    timeline_view,
    verification_view,
)
from domainflow.api.domains.service import AddDomain, ChangeDomain, DomainService
from domainflow.api.http.envelope import (
    AnyRequest,
    Envelope,
    Listing,
    etag_matches,
    header_of,
    request_id_of,
    respond,
    respond_encoded,
    respond_list,
)
from domainflow.api.http.guards import principal_of, requires
from domainflow.api.http.problems import ApiError
from domainflow.api.http.routes import delete, get, patch, post
from domainflow.api.http.text import refuse_unstorable

PATH = "/api/v1/domains"


def service_of(request: AnyRequest) -> DomainService:
    service: DomainService = request.app.state.domains
    return service


async def shown_domain(request: AnyRequest, public_id: str) -> Shown:
    """The team's domain as GET shows it: the bytes last sent, when the domain stands where it
    did then (one narrow query), else built from the domain read whole, and kept. Encoded
    once: the ETag hashes the very bytes the answer carries."""
    service, principal = service_of(request), principal_of(request)
    kept: Representations = request.app.state.shown_domains
    shown = kept.at(public_id, await service.version(principal, public_id))
    if shown is None:
        domain = await service.get(principal, public_id)
        body = msgspec.json.encode(domain_view(domain, service.records(domain)))
        shown = kept.keep(public_id, domain.version, body)
    return shown


class DomainController(Controller):
    path = PATH
    tags = ("domains",)

    @post("/", guards=[requires("domain.create")], operation_id="createDomain", status_code=201)
    async def create(
        self, request: AnyRequest, data: JSONBody[CreateDomain]
    ) -> Response[Envelope[DomainView]]:
        """Add a sending domain; answers with every DNS record to place.

        201 once provisioned; 202 when provisioning outlives the wait bound.
        """
        for field in ("external_id", "metadata", "mail_from", "region", "mode"):
            refuse_unstorable(field, getattr(data, field))
        service = service_of(request)
        added = await service.add(
            principal_of(request),
            AddDomain(
                data.domain,
                data.region,
                data.external_id,
                data.metadata,
                data.mail_from,
                data.mode,
            ),
            request_id_of(request),
            request.headers.get("idempotency-key"),
        )
        view = domain_view(added.domain, service.records(added.domain))
        location = f"{PATH}/{added.domain.public_id}"
        return respond(request, view, 201 if added.settled else 202, location=location)

    @get("/", guards=[requires("domain.read")], operation_id="listDomains")
    async def list_domains(
        self,
        request: AnyRequest,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
        status: FromQuery[str | None] = None,
    ) -> Response[Listing[DomainView]]:
        """List the team's domains, newest first, a page at a time (filter by `status`)."""
        service = service_of(request)
        page = await service.list(principal_of(request), cursor, limit, status)
        items = [domain_view(d, service.records(d)) for d in page.items]
        return respond_list(request, items, page.has_more, page.next_cursor)

    @get("/{public_id:str}", guards=[requires("domain.read")], operation_id="getDomain")
    async def get_domain(
        self, request: AnyRequest, public_id: FromPath[str]
    ) -> Response[Envelope[DomainView]] | Response[None]:
        """One domain with its records, status and last verification results.

        Carries a weak `ETag`; `If-None-Match` with it answers 304 with no body.
        """
        shown = await shown_domain(request, public_id)
        if etag_matches(header_of(request, b"if-none-match"), shown.etag):
            return Response(None, status_code=304, headers={"ETag": shown.etag})
        return respond_encoded(request, shown.body, etag=shown.etag)

    @get(
        "/{public_id:str}/zone-file",
        guards=[requires("domain.read")],
        operation_id="getDomainZoneFile",
        media_type=MediaType.TEXT,
    )
    async def zone_file(self, request: AnyRequest, public_id: FromPath[str]) -> str:
        """The records to place, as a BIND zone-file fragment to paste at a DNS provider."""
        service = service_of(request)
        domain = await service.get(principal_of(request), public_id)
        return to_bind(service.records(domain))

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
        items = [timeline_view(e) for e in page.items]
        return respond(request, TimelinePage(items, page.next_cursor, page.has_more))

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
        domain = await service.get(principal_of(request), public_id)
        records = service.records(domain)
        if format == "bind":
            return Response(to_bind(records), media_type=MediaType.TEXT)
        if format != "json":
            raise ApiError(
                400, "format_invalid", "format must be 'json' or 'bind'.", param="format"
            )
        view: DnsRecordsView = records_view(records)
        return respond(request, view)

    @patch(
        "/{public_id:str}",
        guards=[requires("domain.update")],
        operation_id="patchDomain",
    )
    async def patch_domain(
        self, request: AnyRequest, public_id: FromPath[str], data: JSONBody[dict[str, Any]]
    ) -> Response[Envelope[DomainView]]:
        """Upgrade a send-only domain: `{"mode": "send_receive"}` (nothing else can change).

        It is added to the mail server and is pending until its MX verifies. With `If-Match`
        (the domain's ETag) a domain changed since it was read is refused and left as it is.
        """
        service = service_of(request)
        if_match = request.headers.get("if-match")

        def still(domain: Domain) -> bool:
            return etag_matches(if_match, etag_of(domain_view(domain, service.records(domain))))

        domain = await service.change(
            principal_of(request),
            public_id,
            ChangeDomain(data, still if if_match else None),
            request_id_of(request),
        )
        view = domain_view(domain, service.records(domain))
        return respond(request, view, etag=etag_of(view))

    @post(
        "/{public_id:str}/verify",
        guards=[requires("domain.verify")],
        operation_id="verifyDomain",
        status_code=200,
    )
    async def verify(
        self, request: AnyRequest, public_id: FromPath[str]
    ) -> Response[Envelope[VerificationView]]:
        """Check the records now: MX, ownership, SPF, DMARC, MAIL FROM over DoH; DKIM from SES.

        503 (retry) when the check outlives the wait bound: a retry joins it.
        """
        domain = await service_of(request).verify(
            principal_of(request), public_id, request_id_of(request)
        )
        view = verification_view(domain)
        if view.verification_in_progress:
            raise ApiError(
                503,
                "verification_pending",
                "The check is still running; retry in a few seconds to get its answer "
                "(a retry joins it rather than starting another).",
                {"id": public_id},
                headers={"Retry-After": "5"},
            )
        return respond(request, view)

    @delete(
        "/{public_id:str}",
        guards=[requires("domain.delete")],
        operation_id="deleteDomain",
        status_code=200,
    )
    async def delete_domain(
        self, request: AnyRequest, public_id: FromPath[str]
    ) -> Response[Envelope[DeletionView]]:
        """Remove the domain from the mail server, SES and here (409 while mailboxes use it).

        Once accepted the deletion is certain: `state` says whether SES and the mail server
        are already clear (`deleted`) or being cleared (`deleting`).
        """
        deletion = await service_of(request).delete(
            principal_of(request), public_id, request_id_of(request)
        )
        return respond(request, deletion_view(deletion.domain))
