"""A DKIM status from SES that is not `success` keeps a domain from passing, even with every
DNS record right (seed 001: SES is the authority on DKIM)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aioboto3
import pytest

from domainflow.contracts import CheckOutcome, VerifyRequested
from domainflow.kit.aws import AwsClients
from domainflow.kit.database import Database
from domainflow.kit.runtime import kit_migrations
from domainflow.sandbox.dns import DnsSandbox
from domainflow.sandbox.moto import DkimStatusProxy, MotoSandbox
from domainflow.verifier.adapters.ses import SesIdentities
from domainflow.verifier.main import migrations, open_verifier
from domainflow.verifier.settings import (
    DnsSettings,
    VerifierDatabaseSettings,
    VerifierSesSettings,
    VerifierSettings,
)
from tests.plugins.dns import SandboxZones, make_records

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("ses_says", "reported"),
    [("Pending", "pending"), ("TemporaryFailure", "temporary_failure"), ("Failed", "failed")],
)
async def test_records_right_but_dkim_not_success_fails(
    ses_says: str,
    reported: str,
    database_url: Callable[[str], Awaitable[str]],
    dns_sandbox: DnsSandbox,
    dns_zones: SandboxZones,
    moto_server: MotoSandbox,
) -> None:
    domain = dns_zones.new_domain()
    records = make_records(domain)
    dns_zones.place(records)
    async with aioboto3.Session().client("ses", region_name="us-east-1") as ses:
        await ses.verify_domain_identity(Domain=domain)  # moto alone would say Success

    url = await database_url("verifier_dkim")
    db = await Database.prepare(url, [*kit_migrations(), *migrations()], size=2)
    settings = VerifierSettings(
        database=VerifierDatabaseSettings(url=url),
        dns=DnsSettings(doh_url=dns_sandbox.doh_url, doh_ca_file=str(dns_sandbox.ca_file)),
        ses=VerifierSesSettings(rate=20.0),
    )
    request = VerifyRequested(
        correlation_id="req_dkim",
        team_id="team_abc123",
        domain_id=f"mdom_{domain.split('.')[0]}",
        domain=domain,
        region="us-east-1",
        records=records,
    )
    try:
        with DkimStatusProxy(moto_server.url, {domain: ses_says}) as proxy:
            async with (
                SesIdentities(AwsClients(endpoint_url=proxy.url)) as identities,
                open_verifier(db, settings, ses=identities) as verifier,
            ):
                await verifier.handlers.on_verify_requested(request)
        async with db.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT outcome, ses_dkim_status, checks FROM check_history WHERE domain_id = $1",
                request.domain_id,
            )
    finally:
        await db.close()
    assert row is not None
    assert all(c["outcome"] == CheckOutcome.PASS for c in row["checks"])  # DNS is right
    assert row["ses_dkim_status"] == reported
    assert row["outcome"] == "failed"
