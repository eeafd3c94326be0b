"""moto in server mode on loopback: a real HTTP SES endpoint for tests and the local stack.

`python -m moto.server` runs under this interpreter (so moto and the clients share one
botocore) as a child process that dies with the thread that started it (Linux
PR_SET_PDEATHSIG) and at interpreter exit. `reset()` forgets every identity and mail;
`sent_emails()` reads back what SES "sent" from moto's model dump, `/moto-api/data.json`
(`ses.Message` for SendEmail, `ses.RawMessage` for SendRawEmail, across all regions).
`DkimStatusProxy` sits in front of it to give chosen domains a DKIM status moto never gives.
"""

from __future__ import annotations

import atexit
import ctypes
import email
import email.utils
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from domainflow.sandbox.ports import listening_port

READY_TIMEOUT = 30.0
#: moto's dummy credentials: moto accepts any, and they can never reach real AWS.
TEST_ACCESS_KEY = "testing"


class MotoError(RuntimeError):
    """moto did not start, or its API answered something unexpected."""


@dataclass(frozen=True)
class SentEmail:
    """One mail moto accepted. A SendEmail keeps a single `body` (moto stores the Html part
    when there is one, else the Text part); a SendRawEmail keeps the MIME text in `raw`,
    from which `text` and `html` are read."""

    message_id: str
    source: str
    destinations: list[str]
    subject: str | None
    body: str | None = None
    raw: str | None = None
    text: str | None = None
    html: str | None = None


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # 1 == PR_SET_PDEATHSIG


def _parts(raw: str) -> tuple[str | None, str | None, str | None]:
    message = email.message_from_string(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    text = html = None
    for part in message.walk():
        if part.get_content_type() == "text/plain" and text is None:
            text = part.get_content()
        elif part.get_content_type() == "text/html" and html is None:
            html = part.get_content()
    subject = message["Subject"]
    return (None if subject is None else str(subject)), text, html


def _sent_email(model: str, item: dict[str, Any]) -> SentEmail:
    destinations = item.get("destinations") or []
    if isinstance(destinations, dict):  # SendEmail: {"ToAddresses": [...], "CcAddresses": ...}
        destinations = [
            a for kind in ("To", "Cc", "Bcc") for a in destinations.get(f"{kind}Addresses", [])
        ]
    if model == "RawMessage":
        subject, text, html = _parts(str(item.get("raw_data", "")))
        return SentEmail(
            message_id=str(item["id"]),
            source=str(item.get("source", "")),
            destinations=list(destinations),
            subject=subject,
            raw=str(item.get("raw_data", "")),
            text=text,
            html=html,
        )
    return SentEmail(
        message_id=str(item["id"]),
        source=str(item.get("source", "")),
        destinations=list(destinations),
        subject=item.get("subject"),
        body=item.get("body"),
    )


class MotoSandbox:
    """One `moto.server` process on 127.0.0.1 and a free (or the given) port."""

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self._fixed_port = port is not None
        self._log_path = log_path
        self._die_with_parent = die_with_parent
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise MotoError("moto is not started")
        return f"http://{self.host}:{self.port}"

    endpoint_url = url

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start moto and wait until it answers; a taken free port is retried with another."""
        if self.running:
            return
        tries = 1 if self._fixed_port else 3
        for attempt in range(tries):
            if not self._fixed_port:
                self.port = listening_port()
            try:
                self._spawn()
                self._wait_ready()
            except MotoError:
                self.stop()
                if attempt == tries - 1:
                    raise
            else:
                atexit.register(self.stop)
                return

    def _spawn(self) -> None:
        if self._log_path is None:
            handle, name = tempfile.mkstemp(prefix="moto-", suffix=".log")
            os.close(handle)
            self._log_path = Path(name)
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if self._die_with_parent else None,
            )

    def _log_tail(self, chars: int = 2000) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(errors="replace")[-chars:]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise MotoError(f"moto exited at start:\n{self._log_tail()}")
            try:
                self._request("/moto-api/data.json", timeout=2)
            except (MotoError, OSError):
                pass
            else:
                return
            time.sleep(0.05)
        raise MotoError(
            f"moto did not answer on {self.url} in {READY_TIMEOUT}s:\n{self._log_tail()}"
        )

    def stop(self) -> None:
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _request(self, path: str, method: str = "GET", timeout: float = 30.0) -> bytes:
        if self.port is None:
            raise MotoError("moto is not started")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=b"" if method == "POST" else None)
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise MotoError(f"{method} {path} answered {resp.status}: {body[:500]!r}")
        return body

    def reset(self) -> None:
        """Forget every resource in every region: identities, sent mail, everything."""
        self._request("/moto-api/reset", method="POST")

    def data(self) -> dict[str, Any]:
        """moto's dump of every model instance, by service and model name."""
        loaded: dict[str, Any] = json.loads(self._request("/moto-api/data.json"))
        return loaded

    def sent_emails(self) -> list[SentEmail]:
        """Every mail SES accepted since the last reset, in order of sending per kind."""
        ses = self.data().get("ses", {})
        return [
            _sent_email(model, item)
            for model in ("Message", "RawMessage")
            for item in ses.get(model, [])
        ]

    def verify_sender(self, sender: str, region: str = "us-east-1") -> None:
        """Make `sender` (an address, or a domain) an identity SES will send from in `region`."""
        import botocore.session

        client: Any = botocore.session.get_session().create_client(
            "ses",
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id=TEST_ACCESS_KEY,
            aws_secret_access_key=TEST_ACCESS_KEY,
        )
        try:
            address = email.utils.parseaddr(sender)[1] or sender
            if "@" in address:
                client.verify_email_identity(EmailAddress=address)
            else:
                client.verify_domain_identity(Domain=address)
        finally:
            client.close()


_DKIM_ENTRY = re.compile(
    rb"(<entry>\s*<key>)([^<]*)(</key>\s*<value>.*?<DkimVerificationStatus>)([^<]*)"
    rb"(</DkimVerificationStatus>.*?</value>\s*</entry>)",
    re.DOTALL,
)


class DkimStatusProxy:
    """A real HTTP hop in front of moto that says what SES's DKIM status of chosen domains is.

    moto answers `Success` for every domain identity it holds and `NotStarted` for any other,
    and has no state-manager transition for SES. This proxy forwards every request to moto
    unchanged and rewrites only the `DkimVerificationStatus` of the domains in `statuses`
    (SES's own words: `Pending`, `Failed`, `TemporaryFailure`, ...) in answers to
    GetIdentityDkimAttributes. It also records each such call's identities (`dkim_calls`).
    Point a client at `url` instead of moto's. Runs in a thread of its own, so it serves
    synchronous and asynchronous clients alike.
    """

    def __init__(self, upstream: str, statuses: dict[str, str] | None = None) -> None:
        target = urllib.parse.urlsplit(upstream)
        self._upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.statuses: dict[str, str] = dict(statuses or {})
        self.dkim_calls: list[list[str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise MotoError("the proxy is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                proxy._forward(self)

            def do_GET(self) -> None:
                proxy._forward(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # moto logs requests already

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def _forward(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        conn = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            conn.request(request.command, request.path, body=body or None, headers=headers)
            answer = conn.getresponse()
            payload = answer.read()
            status, answer_headers = answer.status, answer.getheaders()
        finally:
            conn.close()
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        if form.get("Action") == ["GetIdentityDkimAttributes"]:
            members = {
                int(key.rsplit(".", 1)[1]): value[0]
                for key, value in form.items()
                if key.startswith("Identities.member.")
            }
            identities = [members[n] for n in sorted(members)]
            with self._lock:
                self.dkim_calls.append(identities)
                statuses = dict(self.statuses)
            if status == 200:
                payload = self._rewrite(payload, statuses)
        request.send_response(status)
        for name, value in answer_headers:
            if name.lower() not in (
                "content-length",
                "transfer-encoding",
                "connection",
                "server",
                "date",
            ):
                request.send_header(name, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    @staticmethod
    def _rewrite(payload: bytes, statuses: dict[str, str]) -> bytes:
        def entry(match: re.Match[bytes]) -> bytes:
            status = statuses.get(match[2].decode())
            if status is None:
                return match[0]
            return match[1] + match[2] + match[3] + status.encode() + match[5]

        return _DKIM_ENTRY.sub(entry, payload)
