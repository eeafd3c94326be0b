"""Render Postfix's pgsql map of virtual domains from a PostgreSQL URL, and query it with postmap.

The template is `deploy/postfix/virtual_domains.cf.in`; `render_virtual_domains_map` fills in
hosts, user, password and dbname from a `postgresql://user:password@host:port/dbname` URL
(a `?host=/run/postgresql` socket directory becomes Postfix's `unix:` form, on the default
port).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from string import Template
from urllib.parse import parse_qs, unquote, urlsplit

POSTMAP = os.environ.get("DOMAINFLOW_POSTMAP", "/usr/sbin/postmap")
TEMPLATE_PATH = Path(__file__).resolve().parents[4] / "deploy" / "postfix" / "virtual_domains.cf.in"


class PostmapError(RuntimeError):
    """postmap failed (a bad map file, the database unreachable), as opposed to "not found"."""


def _value(text: str, what: str) -> str:
    # A map file holds one `key = value` per line; Postfix trims spaces around a value.
    if "\n" in text or "\r" in text or text != text.strip():
        raise ValueError(f"the {what} cannot be written into a Postfix map file: {text!r}")
    return text


def render_virtual_domains_map(database_url: str, template: str | None = None) -> str:
    """The map file's text for the database at `database_url`."""
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {database_url!r}")
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise ValueError(f"the URL names no database: {database_url!r}")
    query = parse_qs(parts.query)
    socket_dir = (query.get("host") or [""])[0]
    port = parts.port or 5432
    if socket_dir.startswith("/"):
        hosts = f"unix:{socket_dir}"  # libpq takes the directory, default port
    else:
        hosts = f"inet:{parts.hostname or '127.0.0.1'}:{port}"
    text = TEMPLATE_PATH.read_text() if template is None else template
    rendered = Template(text).substitute(
        hosts=_value(hosts, "host"),
        user=_value(unquote(parts.username or "postgres"), "user"),
        password=_value(unquote(parts.password or ""), "password"),
        dbname=_value(dbname, "database name"),
    )
    return "".join(line.rstrip() + "\n" for line in rendered.splitlines())


def write_virtual_domains_map(database_url: str, path: Path) -> Path:
    """Write the map file for `database_url` to `path`, readable by its owner only."""
    path.write_text(render_virtual_domains_map(database_url))
    path.chmod(0o600)  # it holds the database password
    return path


def postmap_query(key: str, map_path: Path, *, timeout: float = 30.0) -> str | None:
    """What `postmap -q key pgsql:map_path` answers; None when the map has no such key."""
    done = subprocess.run(
        [POSTMAP, "-q", key, f"pgsql:{map_path}"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode == 0:
        return done.stdout.strip()
    # postmap says "not found" with exit status 1 and nothing at all on stdout or stderr;
    # a fatal error exits 1 too, but says why on stderr.
    if done.returncode == 1 and not done.stdout.strip() and not done.stderr.strip():
        return None
    raise PostmapError(f"postmap -q {key} exited {done.returncode}: {done.stderr.strip()}")
