"""Every request gets an id (a well-formed client `X-Request-Id` is kept) that follows the work."""

from __future__ import annotations

import re

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from domainflow.kit import tracing
from domainflow.kit.ids import new_id
from domainflow.kit.logging import bind_context, clear_context

_WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def new_request_id() -> str:
    return new_id("req")


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if _WELL_FORMED.fullmatch(sent) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        clear_context()
        bind_context(request_id=request_id, correlation_id=request_id)
        # The request's span is current here (the OpenTelemetry middleware runs outside).
        if (trace_id := tracing.current_trace_id()) is not None:
            bind_context(trace_id=trace_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message)["X-Request-Id"] = request_id
            await send(message)

        await app(scope, receive, send_with_id)

    return middleware
