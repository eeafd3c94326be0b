"""Amazon SES domain identities: create one with Easy DKIM, set its MAIL FROM, delete it.

SES v2 creates, reads and deletes the identity. Its DKIM tokens come from v2's answer when
it has them (real SES always does); an identity without Easy DKIM tokens (one made before
Easy DKIM was on, or moto, whose v2 API never returns tokens) gets them from v1's
VerifyDomainDkim, which starts Easy DKIM and hands back the tokens. The MAIL FROM domain is
set through v1 (the same identity; moto has no v2 call for it). Every call is idempotent, so
a saga step retried after a crash or a lost answer is safe: creating an identity that exists
returns its tokens, deleting one that is gone succeeds. Failures surface as `SesError`.
"""

from __future__ import annotations

from domainflow.kit.aws import SesAdapter, raising_ses_errors


def _identity(domain: str) -> str:
    # SES keys identities as given; one spelling keeps a retry on the identity it made.
    return domain.strip().rstrip(".").lower()


class SesIdentities(SesAdapter):
    """Domain identities in one AWS account, any region."""

    async def create_identity(self, domain: str, region: str) -> list[str]:
        """Create the identity with Easy DKIM; its three DKIM tokens (the existing ones if any)."""
        identity = _identity(domain)
        async with self._clients.sesv2(region) as sesv2:
            with raising_ses_errors():
                try:
                    made = await sesv2.create_email_identity(EmailIdentity=identity)
                    tokens = made.get("DkimAttributes", {}).get("Tokens", [])
                except sesv2.exceptions.AlreadyExistsException:
                    found = await sesv2.get_email_identity(EmailIdentity=identity)
                    tokens = found.get("DkimAttributes", {}).get("Tokens", [])
        if tokens:
            return list(tokens)
        async with self._clients.ses(region) as ses:
            with raising_ses_errors():
                started = await ses.verify_domain_dkim(Domain=identity)
        return list(started["DkimTokens"])

    async def set_mail_from(self, domain: str, mail_from_domain: str, region: str) -> None:
        """Send with a MAIL FROM of `mail_from_domain` (a subdomain of `domain`)."""
        async with self._clients.ses(region) as ses:
            with raising_ses_errors():
                await ses.set_identity_mail_from_domain(
                    Identity=_identity(domain),
                    MailFromDomain=_identity(mail_from_domain),
                    # SES falls back to its own MAIL FROM while the MX is missing, not refuse.
                    BehaviorOnMXFailure="UseDefaultValue",
                )

    async def delete_identity(self, domain: str, region: str) -> None:
        """Delete the identity; one that does not exist is already deleted."""
        async with self._clients.sesv2(region) as sesv2:
            with raising_ses_errors():
                try:
                    await sesv2.delete_email_identity(EmailIdentity=_identity(domain))
                except sesv2.exceptions.NotFoundException:
                    return

    async def identity_exists(self, domain: str, region: str) -> bool:
        async with self._clients.sesv2(region) as sesv2:
            with raising_ses_errors():
                try:
                    await sesv2.get_email_identity(EmailIdentity=_identity(domain))
                except sesv2.exceptions.NotFoundException:
                    return False
        return True
