"""`Allow` on OPTIONS names every method the path serves (Litestar's own lists only some)."""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send


def allow_middleware(app: ASGIApp) -> ASGIApp:
    # Litestar's generated OPTIONS handler is built for the first handler of a path, so a
    # path served by GET and DELETE answered `Allow: DELETE, OPTIONS`; the route knows all.
    served: dict[str, str] = {}

    def methods_of(scope: Scope) -> str | None:
        template = scope.get("path_template", "")
        if not served:
            for route in scope["litestar_app"].routes:
                if isinstance(route, HTTPRoute):
                    served[route.path_format] = ", ".join(sorted(route.methods))
        return served.get(template)

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope.get("method") != "OPTIONS":
            await app(scope, receive, send)
            return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start":
                allowed = methods_of(scope)
                if allowed:
                    MutableScopeHeaders.from_message(message)["Allow"] = allowed
            await send(message)

        await app(scope, receive, send_with_allow)

    return middleware
