"""What SES says of domain identities: DKIM, verification and MAIL FROM, 100 a call.

Three batched reads, each one SES call per 100 identities: GetIdentityDkimAttributes (DKIM
status and whether SES signs), GetIdentityVerificationAttributes and
GetIdentityMailFromDomainAttributes. Calls go one after another; pacing them to SES's one
request per second is the caller's job (the shared SES budget), so each read is its own
method. A domain SES does not know has none of them there: `not_started`, not signing.
Failures surface as `SesError` (`domainflow.kit.aws`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from domainflow.contracts.events import DkimStatus
from domainflow.kit.aws import AwsClients, SesAdapter, raising_ses_errors
from domainflow.kit.logging import get_logger
from domainflow.kit.ses_accounts import SesRoutes
from domainflow.verifier.probe import DkimAttributes

log = get_logger(__name__)

T = TypeVar("T")

#: SES's limit of identities per Get*Attributes call.
MAX_BATCH = 100

#: SES's words for a status (`DkimVerificationStatus`, `VerificationStatus`,
#: `MailFromDomainStatus` share them) in the seed's form.
SES_STATUSES: dict[str, DkimStatus] = {
    "Pending": DkimStatus.PENDING,
    "Success": DkimStatus.SUCCESS,
    "Failed": DkimStatus.FAILED,
    "TemporaryFailure": DkimStatus.TEMPORARY_FAILURE,
    "NotStarted": DkimStatus.NOT_STARTED,
}


def ses_status(word: str | None, *, of: str = "dkim") -> DkimStatus:
    """One of SES's status words as a `DkimStatus`; absent means SES has not started."""
    if word is None:
        return DkimStatus.NOT_STARTED
    known = SES_STATUSES.get(word)
    if known is None:
        # A status newer than this code: not a verdict either way, so wait for SES.
        log.warning("ses.status_unknown", attribute=of, status=word)
        return DkimStatus.PENDING
    return known


def dkim_status(word: str | None) -> DkimStatus:
    """One `DkimVerificationStatus` as a `DkimStatus`; absent means SES has not started."""
    return ses_status(word, of="dkim")


def _identity(domain: str) -> str:
    return domain.strip().rstrip(".").lower()


class SesIdentities(SesAdapter):
    """Reads identity attributes from SES; an async context manager keeps its clients open."""

    def __init__(
        self,
        clients: AwsClients | None = None,
        *,
        batch: int = MAX_BATCH,
        routes: SesRoutes | None = None,
    ) -> None:
        if not 1 <= batch <= MAX_BATCH:
            raise ValueError(f"batch must be between 1 and {MAX_BATCH}")
        super().__init__(clients, routes=routes)
        self._batch = batch

    async def dkim(
        self, domains: Sequence[str], region: str, *, account: str | None = None
    ) -> dict[str, DkimAttributes]:
        """The DKIM status and signing switch of every domain in `domains`, keyed as given."""

        def read(entry: Mapping[str, Any] | None) -> DkimAttributes:
            if entry is None:
                return DkimAttributes(DkimStatus.NOT_STARTED, signing_enabled=False)
            return DkimAttributes(
                dkim_status(entry.get("DkimVerificationStatus")),
                signing_enabled=bool(entry.get("DkimEnabled", False)),
            )

        async def ask(ses: Any, chunk: list[str]) -> Mapping[str, Any]:
            answer = await ses.get_identity_dkim_attributes(Identities=chunk)
            attributes: Mapping[str, Any] = answer["DkimAttributes"]
            return attributes

        return await self._read(domains, region, ask, read, account)

    async def verification(
        self, domains: Sequence[str], region: str, *, account: str | None = None
    ) -> dict[str, DkimStatus]:
        """The identity verification status of every domain in `domains`, keyed as given."""

        def read(entry: Mapping[str, Any] | None) -> DkimStatus:
            word = None if entry is None else entry.get("VerificationStatus")
            return ses_status(word, of="verification")

        async def ask(ses: Any, chunk: list[str]) -> Mapping[str, Any]:
            answer = await ses.get_identity_verification_attributes(Identities=chunk)
            attributes: Mapping[str, Any] = answer["VerificationAttributes"]
            return attributes

        return await self._read(domains, region, ask, read, account)

    async def mail_from(
        self, domains: Sequence[str], region: str, *, account: str | None = None
    ) -> dict[str, DkimStatus]:
        """The MAIL FROM domain status of every domain in `domains`, keyed as given.

        SES answers no status for an identity without a MAIL FROM domain: not started.
        """

        def read(entry: Mapping[str, Any] | None) -> DkimStatus:
            word = None if entry is None else entry.get("MailFromDomainStatus")
            return ses_status(word, of="mail_from")

        async def ask(ses: Any, chunk: list[str]) -> Mapping[str, Any]:
            answer = await ses.get_identity_mail_from_domain_attributes(Identities=chunk)
            attributes: Mapping[str, Any] = answer["MailFromDomainAttributes"]
            return attributes

        return await self._read(domains, region, ask, read, account)

    async def _read(
        self,
        domains: Sequence[str],
        region: str,
        ask: Callable[[Any, list[str]], Awaitable[Mapping[str, Any]]],
        read: Callable[[Mapping[str, Any] | None], T],
        account: str | None = None,
    ) -> dict[str, T]:
        """One call per `batch` identities; each domain's entry, read by `read`."""
        by_identity: dict[str, list[str]] = {}
        for domain in domains:
            by_identity.setdefault(_identity(domain), []).append(domain)
        identities = list(by_identity)
        found: dict[str, T] = {}
        if not identities:
            return found
        clients, _ = self._route(account)
        async with clients.ses(region) as ses:
            for start in range(0, len(identities), self._batch):
                chunk = identities[start : start + self._batch]
                with raising_ses_errors():
                    attributes = await ask(ses, chunk)
                for identity in chunk:
                    value = read(attributes.get(identity))
                    for domain in by_identity[identity]:
                        found[domain] = value
        return found
