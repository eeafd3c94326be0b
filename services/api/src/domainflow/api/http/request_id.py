"""Every request gets an id of ours that follows the work; a client's `X-Request-Id` is kept
beside it, never in its place.

Ours is what the timeline, the events and the logs are keyed by, and what the answer's
`X-Request-Id` and `meta.request_id` echo. A client's own id, when well formed, is kept as
`client_request_id` (in the log context and the answer's `meta`): taking it as ours would
let a client write any id into the timeline, an operator's `op_…` included."""

from __future__ import annotations

import re

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
        sent = ""
        for name, value in scope["headers"]:  # lower-case, as ASGI servers pass them
            if name == b"x-request-id":
                sent = value.decode("latin-1")
                break
        request_id = new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        context = {"request_id": request_id, "correlation_id": request_id}
        if sent and _WELL_FORMED.fullmatch(sent):
            state["client_request_id"] = context["client_request_id"] = sent
        # The request's span is current here (the OpenTelemetry middleware runs outside).
        if (trace_id := tracing.current_trace_id()) is not None:
            context["trace_id"] = trace_id
        clear_context()
        bind_context(**context)

        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Set as raw ASGI header pairs: no header object built per answer.
                kept = [h for h in message.get("headers", ()) if h[0].lower() != b"x-request-id"]
                message["headers"] = [*kept, id_header]
            await send(message)

        await app(scope, receive, send_with_id)

    return middleware
