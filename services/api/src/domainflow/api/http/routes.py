"""The route decorators every controller uses: Litestar's, with guards handed the handler.

Litestar gives each guard a copy of the route handler, made on every request (a copy of each
of the handler's sixty-odd slots): after the query itself, the largest single cost of the
hot read. Our guards (`http/guards.py`) never look at the handler, so they are given the
handler itself; everything else is Litestar's as it is.
"""

from __future__ import annotations

from typing import Any

import litestar
from litestar.connection import ASGIConnection


class _GuardedRoute:
    __slots__ = ()

    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        for guard in self.resolve_guards():  # type: ignore[attr-defined]
            await guard(connection, self)


class get(_GuardedRoute, litestar.get):  # noqa: N801 - read as Litestar's decorators are
    __slots__ = ()


class post(_GuardedRoute, litestar.post):  # noqa: N801
    __slots__ = ()


class patch(_GuardedRoute, litestar.patch):  # noqa: N801
    __slots__ = ()


class delete(_GuardedRoute, litestar.delete):  # noqa: N801
    __slots__ = ()
