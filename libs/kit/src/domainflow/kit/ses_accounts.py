"""Several SES accounts: where a new domain is placed, and the clients that reach each account.

SES keeps at most 10,000 identities per account and region, and paces each account-region on
its own. A domain is placed once, when it is created, in an account that serves its region
and has room (`place`, pure), and every SES call of its life goes to that account
(`SesRoutes.clients`, paced by that account's budget: `SesBudget.for_account`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aioboto3

from domainflow.kit.aws import AwsClients, SesError
from domainflow.kit.settings import AwsSettings, SesAccount, SesSettings


@dataclass(frozen=True)
class AccountUsage:
    """One account-region's identities against its cap."""

    account: str
    region: str
    identities: int
    cap: int

    @property
    def free(self) -> int:
        return max(self.cap - self.identities, 0)


def usage_of(
    accounts: Sequence[SesAccount], region: str, counts: Mapping[str, int]
) -> list[AccountUsage]:
    """Each account serving `region`, with its identities there (`counts`, by account name)."""
    return [
        AccountUsage(a.name, region, counts.get(a.name, 0), a.identity_cap)
        for a in accounts
        if a.serves(region)
    ]


def place(usage: Sequence[AccountUsage], *, margin: int = 0) -> str | None:
    """The account a new domain goes to: the one with the most room beyond `margin`, the
    first listed on a tie; None when every account serving the region is full."""
    best: AccountUsage | None = None
    for candidate in usage:
        if candidate.free <= margin:
            continue
        if best is None or candidate.free > best.free:
            best = candidate
    return None if best is None else best.account


class SesRoutes:
    """One `AwsClients` per SES account, built from its credentials and endpoint; an async
    context manager keeps every account's clients open until it closes."""

    def __init__(self, settings: SesSettings, aws: AwsSettings | None = None) -> None:
        self.default = settings.default_account
        self._clients: dict[str, AwsClients] = {}
        accounts = settings.account_list()
        if self.default not in {a.name for a in accounts}:
            # Domains placed before accounts were listed (none recorded) stay reachable
            # through the standard `AWS_*` variables; no new domain is placed there.
            accounts.append(SesAccount(name=self.default))
        for account in accounts:
            session = aioboto3.Session(
                aws_access_key_id=account.access_key_id,
                aws_secret_access_key=(
                    None
                    if account.secret_access_key is None
                    else account.secret_access_key.get_secret_value()
                ),
                profile_name=account.profile,
            )
            self._clients[account.name] = AwsClients(
                aws, endpoint_url=account.endpoint_url, session=session
            )
        self._stack: AsyncExitStack | None = None

    @property
    def names(self) -> list[str]:
        return list(self._clients)

    def clients(self, account: str | None) -> AwsClients:
        """The clients of `account` (None: the default account)."""
        name = account or self.default
        found = self._clients.get(name)
        if found is None:
            raise SesError(
                "UnknownAccount",
                f"SES account {name!r} is not in DOMAINFLOW_SES_ACCOUNTS",
                retryable=False,
            )
        return found

    async def __aenter__(self) -> Self:
        self._stack = AsyncExitStack()
        for clients in self._clients.values():
            await self._stack.enter_async_context(clients)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
