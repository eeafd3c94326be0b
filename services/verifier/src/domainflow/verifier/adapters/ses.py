"""SES's DKIM status of domain identities, 100 identities per GetIdentityDkimAttributes call.

Calls go one after another; pacing them to SES's one request per second is the caller's job
(the shared SES budget). A domain SES does not know has no DKIM there: `not_started`.
Failures surface as `SesError` (`domainflow.kit.aws`).
"""

from __future__ import annotations

from collections.abc import Sequence

from domainflow.contracts.events import DkimStatus
from domainflow.kit.aws import AwsClients, SesAdapter, raising_ses_errors
from domainflow.kit.logging import get_logger

log = get_logger(__name__)

#: SES's limit of identities per GetIdentityDkimAttributes call.
MAX_BATCH = 100

#: SES's words for DKIM verification (`DkimVerificationStatus`) in the seed's form.
SES_STATUSES: dict[str, DkimStatus] = {
    "Pending": DkimStatus.PENDING,
    "Success": DkimStatus.SUCCESS,
    "Failed": DkimStatus.FAILED,
    "TemporaryFailure": DkimStatus.TEMPORARY_FAILURE,
    "NotStarted": DkimStatus.NOT_STARTED,
}


def dkim_status(ses_status: str | None) -> DkimStatus:
    """One `DkimVerificationStatus` as a `DkimStatus`; absent means SES has not started."""
    if ses_status is None:
        return DkimStatus.NOT_STARTED
    known = SES_STATUSES.get(ses_status)
    if known is None:
        # A status newer than this code: not a verdict either way, so wait for SES.
        log.warning("ses.dkim_status_unknown", status=ses_status)
        return DkimStatus.PENDING
    return known


def _identity(domain: str) -> str:
    return domain.strip().rstrip(".").lower()


class DkimStatuses(SesAdapter):
    """Reads DKIM status from SES; an async context manager keeps its clients open."""

    def __init__(self, clients: AwsClients | None = None, *, batch: int = MAX_BATCH) -> None:
        if not 1 <= batch <= MAX_BATCH:
            raise ValueError(f"batch must be between 1 and {MAX_BATCH}")
        super().__init__(clients)
        self._batch = batch

    async def fetch(self, domains: Sequence[str], region: str) -> dict[str, DkimStatus]:
        """The DKIM status of every domain in `domains`, keyed as given."""
        by_identity: dict[str, list[str]] = {}
        for domain in domains:
            by_identity.setdefault(_identity(domain), []).append(domain)
        identities = list(by_identity)
        found: dict[str, DkimStatus] = {}
        async with self._clients.ses(region) as ses:
            for start in range(0, len(identities), self._batch):
                chunk = identities[start : start + self._batch]
                with raising_ses_errors():
                    answer = await ses.get_identity_dkim_attributes(Identities=chunk)
                attributes = answer["DkimAttributes"]
                for identity in chunk:
                    entry = attributes.get(identity)
                    ses_status = None if entry is None else entry.get("DkimVerificationStatus")
                    for domain in by_identity[identity]:
                        found[domain] = dkim_status(ses_status)
        return found
