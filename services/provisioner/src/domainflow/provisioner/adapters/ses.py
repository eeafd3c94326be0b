"""Amazon SES domain identities: create one with Easy DKIM, set its MAIL FROM, delete it.

SES v2 creates, reads and deletes the identity. Its DKIM tokens come from v2's answer when
it has them (real SES always does); an identity without Easy DKIM tokens (one made before
Easy DKIM was on, or moto, whose v2 API never returns tokens) gets them from v1's
VerifyDomainDkim, which starts Easy DKIM and hands back the tokens. The MAIL FROM domain is
set through v1 (the same identity; moto has no v2 call for it). Every call is idempotent, so
a saga step retried after a crash or a lost answer is safe: creating an identity that exists
returns its tokens, deleting one that is gone succeeds.

Each call takes a slot of the account's shared SES budget first and is made again in a later
slot when SES throttles it anyway, so throttling never reaches the saga. Other failures
surface as `SesError`; one raised after the identity was created (or found) says so
(`took_effect`), so the saga undoes the identity instead of taking the step for a no-op.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from domainflow.kit.aws import AwsClients, SesAdapter, SesError, raising_ses_errors, ses_error
from domainflow.kit.ses_accounts import SesRoutes
from domainflow.kit.ses_budget import SesBudget

T = TypeVar("T")


def _identity(domain: str) -> str:
    # SES keys identities as given; one spelling keeps a retry on the identity it made.
    return domain.strip().rstrip(".").lower()


class SesIdentities(SesAdapter):
    """Domain identities in any region of the domain's SES account (`account`: its name in
    `routes`; None: the default account, `clients` and `budget`)."""

    def __init__(
        self,
        clients: AwsClients | None = None,
        budget: SesBudget | None = None,
        *,
        call_timeout: float | None = None,
        routes: SesRoutes | None = None,
    ) -> None:
        super().__init__(clients, budget, routes=routes)
        self._call_timeout = call_timeout

    async def _call(self, budget: SesBudget, region: str, make: Callable[[], Awaitable[T]]) -> T:
        return await budget.call(region, make, timeout=self._call_timeout)

    async def create_identity(
        self, domain: str, region: str, *, account: str | None = None
    ) -> list[str]:
        """Create the identity with Easy DKIM; its three DKIM tokens (the existing ones if any)."""
        identity = _identity(domain)
        clients, budget = self._route(account)
        async with clients.sesv2(region) as sesv2:
            with raising_ses_errors():
                try:
                    made = await self._call(
                        budget, region, lambda: sesv2.create_email_identity(EmailIdentity=identity)
                    )
                    tokens = made.get("DkimAttributes", {}).get("Tokens", [])
                except sesv2.exceptions.AlreadyExistsException:
                    tokens = []
                    try:
                        found = await self._call(
                            budget, region, lambda: sesv2.get_email_identity(EmailIdentity=identity)
                        )
                    except Exception as exc:
                        raise _took_effect(exc) from exc
                    tokens = found.get("DkimAttributes", {}).get("Tokens", [])
        if tokens:
            return list(tokens)
        # The identity exists now: whatever fails from here leaves it behind to undo.
        async with clients.ses(region) as ses:
            try:
                started = await self._call(
                    budget, region, lambda: ses.verify_domain_dkim(Domain=identity)
                )
            except Exception as exc:
                raise _took_effect(exc) from exc
        return list(started["DkimTokens"])

    async def set_mail_from(
        self, domain: str, mail_from_domain: str, region: str, *, account: str | None = None
    ) -> None:
        """Send with a MAIL FROM of `mail_from_domain` (a subdomain of `domain`)."""
        clients, budget = self._route(account)
        async with clients.ses(region) as ses:
            with raising_ses_errors():
                await self._call(
                    budget,
                    region,
                    lambda: ses.set_identity_mail_from_domain(
                        Identity=_identity(domain),
                        MailFromDomain=_identity(mail_from_domain),
                        # SES falls back to its own MAIL FROM while the MX is missing.
                        BehaviorOnMXFailure="UseDefaultValue",
                    ),
                )

    async def delete_identity(
        self, domain: str, region: str, *, account: str | None = None
    ) -> None:
        """Delete the identity; one that does not exist is already deleted."""
        clients, budget = self._route(account)
        async with clients.sesv2(region) as sesv2:
            with raising_ses_errors():
                try:
                    await self._call(
                        budget,
                        region,
                        lambda: sesv2.delete_email_identity(EmailIdentity=_identity(domain)),
                    )
                except sesv2.exceptions.NotFoundException:
                    return

    async def identity_exists(
        self, domain: str, region: str, *, account: str | None = None
    ) -> bool:
        clients, budget = self._route(account)
        async with clients.sesv2(region) as sesv2:
            with raising_ses_errors():
                try:
                    await self._call(
                        budget,
                        region,
                        lambda: sesv2.get_email_identity(EmailIdentity=_identity(domain)),
                    )
                except sesv2.exceptions.NotFoundException:
                    return False
        return True


def _took_effect(exc: BaseException) -> BaseException:
    """`exc` as an `SesError` that says the identity exists, whatever kind of failure it was."""
    error = ses_error(exc)
    if error is None:
        error = SesError(type(exc).__name__, str(exc), retryable=False)
    return SesError(error.code, error.message, retryable=error.retryable, took_effect=True)
