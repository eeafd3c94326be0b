"""Pytest fixtures: ses — moto in server mode, over HTTP, as the session's Amazon SES.

`moto_server` starts once per session and points the standard AWS variables at it
(`AWS_ENDPOINT_URL`, `AWS_DEFAULT_REGION=us-east-1`, dummy credentials), so any client the
code under test builds, in this process or a child, reaches moto and never AWS. `fresh_moto`
is per test and starts it from nothing (not autouse: module-scoped fixtures of other tests
keep what they set up). The session also gets an SES budget database of its own
(`DOMAINFLOW_SES_BUDGET_DATABASE_URL`), so services started by tests never share slots with
a developer's stack. `ses_quota` puts `SesQuotaSandbox` (SES's throttling) in front of moto.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aioboto3
import pytest

from domainflow.kit.database import drop_database, ensure_database
from domainflow.sandbox.moto import TEST_ACCESS_KEY, MotoSandbox, SesQuotaSandbox
from tests.plugins.infra import POSTGRES

REGION = "us-east-1"

#: Variables that would steer a client elsewhere than moto (a profile, a real session token,
#: a service-specific endpoint).
_CLEARED = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL_SES",
    "AWS_ENDPOINT_URL_SESV2",
    "AWS_REGION",
)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoSandbox]:
    """A started `MotoSandbox` (`.url`), the AWS variables of the session pointing at it."""
    sandbox = MotoSandbox(log_path=tmp_path_factory.mktemp("moto") / "moto.log")
    sandbox.start()
    budget_url = f"{POSTGRES}/dftest_ses_budget_{uuid.uuid4().hex[:6]}"
    asyncio.run(ensure_database(budget_url))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DOMAINFLOW_SES_BUDGET_DATABASE_URL", budget_url)
        for name in _CLEARED:
            env.delenv(name, raising=False)
        env.setenv("AWS_ENDPOINT_URL", sandbox.url)
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)
        env.setenv("AWS_SECRET_ACCESS_KEY", TEST_ACCESS_KEY)
        try:
            yield sandbox
        finally:
            sandbox.stop()
            asyncio.run(drop_database(budget_url))


@pytest.fixture
def fresh_moto(moto_server: MotoSandbox) -> MotoSandbox:
    """The session's moto with nothing in it: no identities, no mail."""
    moto_server.reset()
    return moto_server


@pytest.fixture
def ses_quota(fresh_moto: MotoSandbox) -> Iterator[SesQuotaSandbox]:
    """An SES that keeps the quotas, 1 request/s and 1 mail/s per region, in front of an
    empty moto: point clients (or services, through `AWS_ENDPOINT_URL`) at its `url`."""
    with SesQuotaSandbox(fresh_moto.url, rate=1.0, send_rate=1.0) as proxy:
        yield proxy


#: The three SES accounts of the multi-account tests, and their ids in moto.
ACCOUNT_IDS = {"alpha": "111111111111", "beta": "222222222222", "gamma": "333333333333"}


@dataclass
class MotoAccounts:
    """Three accounts in the session's moto, each with keys of its own (moto serves a request
    in the account whose IAM holds its key): what `DOMAINFLOW_SES_ACCOUNTS` lists, and each
    account's SES state read with its own keys, never through the code under test."""

    url: str
    keys: dict[str, tuple[str, str]]

    def entries(self, **extra: dict[str, Any]) -> list[dict[str, Any]]:
        """The accounts as `DOMAINFLOW_SES_ACCOUNTS` entries; `extra` adds fields by name
        (`beta={"identity_cap": 1}`)."""
        return [
            {"name": name, "access_key_id": key, "secret_access_key": secret, **extra.get(name, {})}
            for name, (key, secret) in self.keys.items()
        ]

    def setting(self, **extra: dict[str, Any]) -> str:
        return json.dumps(self.entries(**extra))

    def _session(self, name: str) -> aioboto3.Session:
        key, secret = self.keys[name]
        return aioboto3.Session(aws_access_key_id=key, aws_secret_access_key=secret)

    async def identities(self, name: str, region: str = REGION) -> set[str]:
        """The identities account `name` holds in `region`."""
        async with self._session(name).client(
            "ses", region_name=region, endpoint_url=self.url
        ) as ses:
            listed = await ses.list_identities(IdentityType="Domain", MaxItems=1000)
        return set(listed["Identities"])

    async def holders(self, domain: str, region: str = REGION) -> list[str]:
        """The accounts holding an identity for `domain` in `region`."""
        return [n for n in self.keys if domain in await self.identities(n, region)]

    async def mail_from(self, name: str, domain: str, region: str = REGION) -> str | None:
        """The MAIL FROM domain account `name` has set for `domain`, if any."""
        async with self._session(name).client(
            "ses", region_name=region, endpoint_url=self.url
        ) as ses:
            found = await ses.get_identity_mail_from_domain_attributes(Identities=[domain])
        entry: dict[str, Any] = dict(found["MailFromDomainAttributes"].get(domain) or {})
        value = entry.get("MailFromDomain")
        return None if value is None else str(value)


@pytest.fixture
def moto_accounts(moto_server: MotoSandbox) -> MotoAccounts:
    """Three SES accounts in the session's moto (keys made now: a reset forgets them)."""
    return MotoAccounts(
        moto_server.url,
        {name: moto_server.account_keys(account) for name, account in ACCOUNT_IDS.items()},
    )
