"""The claim endpoints: claim a name another team holds, and look at a claim."""

from __future__ import annotations

from litestar import Controller, Response
from litestar.params import FromPath, JSONBody

from domainflow.api.claims.schemas import ClaimView, claim_view
from domainflow.api.claims.service import ClaimService
from domainflow.api.domains.schemas import CreateDomain
from domainflow.api.domains.service import AddDomain
from domainflow.api.http.envelope import AnyRequest, Envelope, request_id_of, respond
from domainflow.api.http.guards import principal_of, requires
from domainflow.api.http.routes import get, post
from domainflow.api.http.text import refuse_unstorable

PATH = "/api/v1/domains/claims"


def service_of(request: AnyRequest) -> ClaimService:
    service: ClaimService = request.app.state.claims
    return service


class ClaimController(Controller):
    path = PATH
    tags = ("domains",)

    @post("/", guards=[requires("domain.create")], operation_id="claimDomain", status_code=200)
    async def claim(
        self, request: AnyRequest, data: JSONBody[CreateDomain]
    ) -> Response[Envelope[ClaimView]]:
        """Claim a name another team holds, by the ownership TXT with your team's value.

        200 once the name is yours (`domain_id`); 202 while the DNS is checked, the holder's
        mailboxes go (`waiting`) or its domain is released (poll `Location`, or retry with
        the same Idempotency-Key); 409 with the reason when the claim is refused.
        """
        for field in ("external_id", "metadata", "mail_from", "region", "mode"):
            refuse_unstorable(field, getattr(data, field))
        claim = await service_of(request).claim(
            principal_of(request),
            AddDomain(
                data.domain, data.region, data.external_id, data.metadata, data.mail_from, data.mode
            ),
            request_id_of(request),
            request.headers.get("idempotency-key"),
        )
        location = f"{PATH}/{claim.public_id}"
        done = claim.domain_public_id is not None
        return respond(request, claim_view(claim), 200 if done else 202, location=location)

    @get("/{public_id:str}", guards=[requires("domain.read")], operation_id="getClaim")
    async def get_claim(
        self, request: AnyRequest, public_id: FromPath[str]
    ) -> Response[Envelope[ClaimView]]:
        """One of the team's claims, as it stands."""
        claim = await service_of(request).get(principal_of(request), public_id)
        return respond(request, claim_view(claim))
