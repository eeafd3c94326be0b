"""The one place that builds AWS clients: one aioboto3 session, bounded SES clients per region.

Credentials, region and endpoint come from the standard AWS variables, read by botocore itself
(`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL` or a
service's own `AWS_ENDPOINT_URL_SES`/`AWS_ENDPOINT_URL_SESV2`), and `AWS_MAX_ATTEMPTS` and
`AWS_RETRY_MODE` through the settings (`kit.settings.AwsSettings`); an explicit `endpoint_url`
wins over them. botocore makes one attempt per call unless `AWS_MAX_ATTEMPTS` says otherwise,
on purpose: its own retries would resend throttled calls outside the shared SES budget
(`domainflow.kit.ses_budget`), which already waits out throttling slot by slot, and each
caller has its own policy for outages. Used as an async context manager, `AwsClients` keeps
one client (one connection pool) per service and region until it closes; used without, every
`ses()`/`sesv2()` block opens and closes a client of its own.

`SesError` is what the SES adapters raise: SES's error code and message, and whether trying
again may help.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Self, TypeVar

import aioboto3
import aiohttp
from aiobotocore.client import AioBaseClient
from aiobotocore.config import AioConfig
from aiobotocore.session import ClientCreatorContext
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.parsers import ResponseParserError
from types_aiobotocore_ses.client import SESClient
from types_aiobotocore_sesv2.client import SESV2Client

from domainflow.kit import tracing
from domainflow.kit.settings import AwsSettings

if TYPE_CHECKING:
    from domainflow.kit.ses_accounts import SesRoutes
    from domainflow.kit.ses_budget import SesBudget

#: SES error codes that say "not now": the same request may succeed later.
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestThrottled",
        "LimitExceeded",
        "LimitExceededException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


C = TypeVar("C", bound=AioBaseClient)  # an aiobotocore client type


class SesError(Exception):
    """SES refused or could not be reached: its error code, its words, whether to retry, and
    whether an earlier call of the same operation already changed something in SES."""

    def __init__(
        self, code: str, message: str, *, retryable: bool, took_effect: bool = False
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.took_effect = took_effect


def ses_error(exc: BaseException) -> SesError | None:
    """`exc` as an `SesError`, or None when it is no SES or connection failure.

    Connection failures keep a code that says how far the request got: a connect that failed
    (`EndpointConnectionError`, `ConnectTimeout`) most likely sent nothing, a read timeout or
    a dropped connection (`ReadTimeout`, `ConnectionClosed`) may hide a request SES carried out.
    """
    if isinstance(exc, SesError):
        return exc
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        message = str(error.get("Message") or exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return SesError(code, message, retryable=code in RETRYABLE_CODES or status >= 500)
    if isinstance(exc, ConnectTimeoutError):
        return SesError("ConnectTimeout", str(exc), retryable=True)
    if isinstance(exc, EndpointConnectionError):
        return SesError("EndpointConnectionError", str(exc), retryable=True)
    if isinstance(exc, ReadTimeoutError):
        return SesError("ReadTimeout", str(exc), retryable=True)
    if isinstance(exc, ConnectionClosedError):
        return SesError("ConnectionClosed", str(exc), retryable=True)
    if isinstance(exc, BotoConnectionError | HTTPClientError | aiohttp.ClientError | OSError):
        return SesError("ConnectionError", str(exc), retryable=True)
    if isinstance(exc, TimeoutError):
        return SesError("Timeout", str(exc) or "no answer in time", retryable=True)
    if isinstance(exc, ResponseParserError):  # a garbled answer, e.g. from a proxy
        return SesError("InvalidResponse", str(exc), retryable=True)
    if isinstance(exc, BotoCoreError):  # missing credentials or region, invalid parameters
        return SesError(type(exc).__name__, str(exc), retryable=False)
    return None


@contextmanager
def raising_ses_errors() -> Iterator[None]:
    """Re-raise SES and connection failures inside the block as `SesError`."""
    try:
        yield
    except Exception as exc:
        translated = ses_error(exc)
        if translated is None or translated is exc:
            raise
        raise translated from exc


def _hold_to_slots(client: AioBaseClient) -> None:
    """A request made under the SES budget checks its slot again right before it leaves."""
    from domainflow.kit.ses_budget import hold_to_slot

    # aiobotocore awaits a handler that returns a coroutine; botocore's stubs know only
    # plain ones.
    client.meta.events.register("before-send", hold_to_slot)  # type: ignore[arg-type]
    tracing.trace_aws_calls(client, _SERVICE_IDS.get(client.meta.service_model.service_name, ""))


#: How spans name each client's calls (`SES.SendEmail`), as botocore's service ids do.
_SERVICE_IDS = {"ses": "SES", "sesv2": "SESV2"}


class AwsClients:
    """One aioboto3 session and the SES clients made from it, all with the same bounds."""

    def __init__(
        self,
        settings: AwsSettings | None = None,
        *,
        endpoint_url: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
        max_attempts: int | None = None,
        retry_mode: str | None = None,
        max_pool_connections: int = 10,
        session: aioboto3.Session | None = None,
    ) -> None:
        # Tries and retry mode: the caller's, else `settings`' (read from the environment's
        # `AWS_MAX_ATTEMPTS` and `AWS_RETRY_MODE` when none are given).
        aws = settings or AwsSettings()
        self.session = session or aioboto3.Session()
        self.endpoint_url = endpoint_url
        # `total_max_attempts` counts the first request too, as AWS_MAX_ATTEMPTS does;
        # botocore's `max_attempts` key would count retries only.
        self.config = AioConfig(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={
                "mode": retry_mode or aws.retry_mode,
                "total_max_attempts": aws.max_attempts if max_attempts is None else max_attempts,
            },
            max_pool_connections=max_pool_connections,
        )
        self._stack: AsyncExitStack | None = None
        self._ses: dict[str | None, SESClient] = {}
        self._sesv2: dict[str | None, SESV2Client] = {}
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        if self._stack is None:
            self._stack = AsyncExitStack()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the clients kept open; later `ses()` blocks open clients of their own."""
        stack, self._stack = self._stack, None
        self._ses.clear()
        self._sesv2.clear()
        if stack is not None:
            await stack.aclose()

    def _new_ses(self, region: str | None) -> ClientCreatorContext[SESClient]:
        return self.session.client(
            "ses", region_name=region, endpoint_url=self.endpoint_url, config=self.config
        )

    def _new_sesv2(self, region: str | None) -> ClientCreatorContext[SESV2Client]:
        return self.session.client(
            "sesv2", region_name=region, endpoint_url=self.endpoint_url, config=self.config
        )

    @asynccontextmanager
    async def _client(
        self,
        kept: dict[str | None, C],
        region: str | None,
        new: Callable[[str | None], ClientCreatorContext[C]],
    ) -> AsyncIterator[C]:
        # Outside `async with AwsClients()`, each block opens and closes a client of its own;
        # inside, one client per region is kept open until `aclose()`.
        if self._stack is None:
            async with new(region) as client:
                _hold_to_slots(client)
                yield client
            return
        if region not in kept:
            async with self._lock:
                if region not in kept:
                    client = await self._stack.enter_async_context(new(region))
                    _hold_to_slots(client)
                    kept[region] = client
        yield kept[region]

    @asynccontextmanager
    async def sesv2(self, region: str | None = None) -> AsyncIterator[SESV2Client]:
        """An SES v2 client for `region` (None: botocore's own choice, AWS_DEFAULT_REGION)."""
        async with self._client(self._sesv2, region, self._new_sesv2) as client:
            yield client

    @asynccontextmanager
    async def ses(self, region: str | None = None) -> AsyncIterator[SESClient]:
        """An SES (v1) client for `region` (None: botocore's own choice, AWS_DEFAULT_REGION)."""
        async with self._client(self._ses, region, self._new_ses) as client:
            yield client


class SesAdapter:
    """Base of each service's SES adapter: holds the clients and the shared budget every
    call takes its slot from, and as an async context manager keeps the clients open for
    the adapter's lifetime (a service opens it once). Without a budget, calls are not
    paced but throttling is still waited out."""

    def __init__(
        self,
        clients: AwsClients | None = None,
        budget: SesBudget | None = None,
        *,
        routes: SesRoutes | None = None,
    ) -> None:
        from domainflow.kit.ses_budget import SesBudget

        self._clients = clients or AwsClients()
        self._budget = budget or SesBudget.unlimited()
        self._routes = routes

    def _route(self, account: str | None) -> tuple[AwsClients, SesBudget]:
        """The clients and budget of a domain's SES account (None: the default account)."""
        if self._routes is None or account is None:
            return self._clients, self._budget.for_account(account)
        return self._routes.clients(account), self._budget.for_account(account)

    async def __aenter__(self) -> Self:
        await self._clients.__aenter__()
        if self._routes is not None:
            await self._routes.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._clients.aclose()
        if self._routes is not None:
            await self._routes.__aexit__(exc_type, exc, tb)
