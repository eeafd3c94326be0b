"""moto in server mode on loopback: a real HTTP SES endpoint for tests and the local stack.

`python -m moto.server` runs under this interpreter (so moto and the clients share one
botocore) as a child process that dies with the thread that started it (Linux
PR_SET_PDEATHSIG) and at interpreter exit. `reset()` forgets every identity and mail;
`sent_emails()` reads back what SES "sent" from moto's model dump, `/moto-api/data.json`
(`ses.Message` for SendEmail, `ses.RawMessage` for SendRawEmail, across all regions).
`DkimStatusProxy` sits in front of it to give chosen domains a DKIM, verification or MAIL FROM
status moto never gives;
`SesQuotaProxy` sits in front of it to refuse, as SES does, what goes past the account's rates.
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
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
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

    def account_keys(self, account_id: str, user: str | None = None) -> tuple[str, str]:
        """Keys of a new IAM user in account `account_id` (`account_keys`)."""
        return account_keys(self.url, account_id, user)


def account_keys(url: str, account_id: str, user: str | None = None) -> tuple[str, str]:
    """Keys of a new IAM user in the moto at `url`, in its account `account_id` (12 digits):
    moto keys its state by account, and serves a request in the account whose IAM holds its
    access key id, so clients built with these keys see that account's SES alone. A reset
    forgets the keys: make them again after one."""
    import botocore.session

    client: Any = botocore.session.get_session().create_client(
        "iam",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=TEST_ACCESS_KEY,
        aws_secret_access_key=TEST_ACCESS_KEY,
    )

    def in_account(request: Any, **_: Any) -> None:
        request.headers["x-moto-account-id"] = account_id

    client.meta.events.register("before-sign.iam", in_account)
    user = user or f"domainflow-{uuid.uuid4().hex[:8]}"
    try:
        client.create_user(UserName=user)
        made = client.create_access_key(UserName=user)["AccessKey"]
    finally:
        client.close()
    return str(made["AccessKeyId"]), str(made["SecretAccessKey"])


def _status_entries(tag: str) -> re.Pattern[bytes]:
    """An `<entry>` of an identity-attributes answer whose `<value>` holds `<tag>`; the
    value may not run past its own `</value>` (an entry without the tag is left alone)."""
    element = tag.encode()
    return re.compile(
        rb"(<entry>\s*<key>)([^<]*)(</key>\s*<value>(?:(?!</value>).)*?<"
        + element
        + rb">)([^<]*)(</"
        + element
        + rb">(?:(?!</value>).)*</value>\s*</entry>)",
        re.DOTALL,
    )


#: The identity-attribute reads the proxy rewrites, and the status element each answers.
_STATUS_TAGS = {
    "GetIdentityDkimAttributes": "DkimVerificationStatus",
    "GetIdentityVerificationAttributes": "VerificationStatus",
    "GetIdentityMailFromDomainAttributes": "MailFromDomainStatus",
}
_ENTRIES = {action: _status_entries(tag) for action, tag in _STATUS_TAGS.items()}


class DkimStatusProxy:
    """A real HTTP hop in front of moto that says what SES's statuses of chosen domains are.

    moto answers `Success` for every domain identity it holds (DKIM, verification, and a
    MAIL FROM domain once set) and `NotStarted` or nothing for any other, and has no
    state-manager transition for SES. This proxy forwards every request to moto unchanged
    and rewrites only the status of the domains it is told about (SES's own words:
    `Pending`, `Failed`, `TemporaryFailure`, ...): `DkimVerificationStatus` for those in
    `statuses` (GetIdentityDkimAttributes), `VerificationStatus` for those in
    `verification_statuses` (GetIdentityVerificationAttributes) and `MailFromDomainStatus`
    for those in `mail_from_statuses` (GetIdentityMailFromDomainAttributes; only where moto
    answers one). It records each DKIM call's identities (`dkim_calls`), and every call of
    the three with its action (`attribute_calls`). Point a client at `url` instead of
    moto's. Runs in a thread of its own, so it serves synchronous and asynchronous clients
    alike.
    """

    def __init__(
        self,
        upstream: str,
        statuses: dict[str, str] | None = None,
        *,
        verification_statuses: dict[str, str] | None = None,
        mail_from_statuses: dict[str, str] | None = None,
    ) -> None:
        target = urllib.parse.urlsplit(upstream)
        self._upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.statuses: dict[str, str] = dict(statuses or {})
        self.verification_statuses: dict[str, str] = dict(verification_statuses or {})
        self.mail_from_statuses: dict[str, str] = dict(mail_from_statuses or {})
        self.dkim_calls: list[list[str]] = []
        self.attribute_calls: list[tuple[str, list[str]]] = []
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
        action = (form.get("Action") or [""])[0]
        if action in _ENTRIES:
            members = {
                int(key.rsplit(".", 1)[1]): value[0]
                for key, value in form.items()
                if key.startswith("Identities.member.")
            }
            identities = [members[n] for n in sorted(members)]
            with self._lock:
                self.attribute_calls.append((action, identities))
                if action == "GetIdentityDkimAttributes":
                    self.dkim_calls.append(identities)
                statuses = dict(
                    {
                        "GetIdentityDkimAttributes": self.statuses,
                        "GetIdentityVerificationAttributes": self.verification_statuses,
                        "GetIdentityMailFromDomainAttributes": self.mail_from_statuses,
                    }[action]
                )
            if status == 200:
                payload = self._rewrite(payload, statuses, _ENTRIES[action])
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
    def _rewrite(payload: bytes, statuses: dict[str, str], entries: re.Pattern[bytes]) -> bytes:
        def entry(match: re.Match[bytes]) -> bytes:
            status = statuses.get(match[2].decode())
            if status is None:
                return match[0]
            return match[1] + match[2] + match[3] + status.encode() + match[5]

        return entries.sub(entry, payload)


#: SES v1 actions (query protocol) that send mail: they spend the sending rate, not the
#: one request a second every other action shares.
SEND_ACTIONS = frozenset(
    {"SendEmail", "SendRawEmail", "SendTemplatedEmail", "SendBulkTemplatedEmail"}
)
#: SES v2 paths (REST) that send mail.
_SEND_PATHS = ("/v2/email/outbound-emails", "/v2/email/outbound-bulk-emails")
_REGION = re.compile(r"Credential=[^/]+/\d+/([^/]+)/")
#: The access key id a request is signed with: the stand-in's "account" (SES keeps quotas
#: per account and region; moto serves each key in its own account).
_KEY_ID = re.compile(r"Credential=([^/]+)/")

_V1_THROTTLED = (
    '<ErrorResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/">'
    "<Error><Type>Sender</Type><Code>Throttling</Code><Message>{message}</Message></Error>"
    "<RequestId>{request_id}</RequestId></ErrorResponse>"
)


@dataclass(frozen=True)
class SeenCall:
    """One SES request the quota proxy saw: when (monotonic), what, and whether it passed."""

    at: float
    region: str
    kind: str  # "request" (every non-send action) or "send"
    action: str
    accepted: bool
    #: The identity the call names (empty: none, or several, as a batched read names).
    identity: str = ""
    #: The access key id it was signed with (one account's keys share nothing with another's).
    key_id: str = ""


def _v2_identity(path: str, body: bytes) -> str:
    """The identity a v2 call names: in its path (`/v2/email/identities/<name>...`), or the
    `EmailIdentity` of a create's body."""
    parts = path.split("/")
    if len(parts) > 4 and parts[2:4] == ["email", "identities"]:
        return urllib.parse.unquote(parts[4])
    try:
        named = json.loads(body or b"{}").get("EmailIdentity", "")
    except (ValueError, AttributeError):
        return ""
    return named if isinstance(named, str) else ""


class _Bucket:
    """A token bucket of `burst` tokens refilled at `rate` a second: SES's rate, as judged
    at arrival. A throttled request takes no token."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.at = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0 - 1e-9:
            self.tokens -= 1.0
            return True
        return False


class QuotaCounts:
    """What an SES stand-in saw: every request with its arrival, and whether it passed."""

    started_at: float

    def _seen(self) -> list[SeenCall]:
        raise NotImplementedError

    def calls(self, kind: str | None = None, *, accepted: bool | None = None) -> list[SeenCall]:
        return [
            c
            for c in self._seen()
            if (kind is None or c.kind == kind) and (accepted is None or c.accepted is accepted)
        ]

    def per_second(self, kind: str = "request") -> dict[int, tuple[int, int]]:
        """Whole seconds since the start: (accepted, throttled) requests of `kind` in each."""
        accepted: Counter[int] = Counter()
        throttled: Counter[int] = Counter()
        for call in self.calls(kind):
            second = int(call.at - self.started_at)
            (accepted if call.accepted else throttled)[second] += 1
        return {s: (accepted[s], throttled[s]) for s in sorted({*accepted, *throttled})}

    def most_in_a_second(self, kind: str = "request", *, accepted: bool | None = None) -> int:
        """The most `kind` requests seen (or only accepted, or only throttled) in any one
        second, any window, not only whole seconds since the start."""
        stamps = sorted(c.at for c in self.calls(kind, accepted=accepted))
        best = start = 0
        for end, stamp in enumerate(stamps):
            while stamp - stamps[start] >= 1.0:
                start += 1
            best = max(best, end - start + 1)
        return best


class SesQuotaProxy(QuotaCounts):
    """A real HTTP hop in front of moto that keeps Amazon SES's quotas, as SES does.

    moto never throttles. This proxy counts each SES request per access key id (an account: moto
    serves each key in its own) and region against the account's rates (`rate` for every action
    but sending, `send_rate` for sending), and past them answers what SES answers: v1
    (query/XML) `Throttling` with HTTP 400, v2 (REST/JSON) `TooManyRequestsException` with HTTP
    429. Everything else goes to moto unchanged; moto's own `/moto-api/` is never counted. Each
    quota is a token bucket judged at arrival, `burst` requests deep (1: never two requests
    closer than 1/rate). Every SES request is recorded (`seen`), and `per_second()` counts them
    by whole second since the proxy started, so a test asserts on what SES would have seen, not
    on how long the run took. `GET /quota-api/seen` gives the same counts over HTTP (the local
    stack's proxy, `DOMAINFLOW_SANDBOX_SES_QUOTAS=true`).
    """

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 1.0,
        send_rate: float = 1.0,
        burst: float = 1.0,
        port: int = 0,
        clock: Any = time.monotonic,
    ) -> None:
        if rate <= 0 or send_rate <= 0 or burst < 1:
            raise ValueError("rates must be positive and the burst at least one request")
        target = urllib.parse.urlsplit(upstream)
        self._upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.rates = {"request": rate, "send": send_rate}
        self.burst = burst
        self._port = port
        self._clock = clock
        self.started_at = clock()
        self.seen: list[SeenCall] = []
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

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
            protocol_version = "HTTP/1.1"  # keep-alive, as SES: no connect per call

            def do_POST(self) -> None:
                proxy._handle(self)

            def do_GET(self) -> None:
                proxy._handle(self)

            def do_DELETE(self) -> None:
                proxy._handle(self)

            def do_PUT(self) -> None:
                proxy._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def reset(self) -> None:
        """Forget what was seen and refill every bucket (a new test, a new run)."""
        with self._lock:
            self.seen.clear()
            self._buckets.clear()
            self.started_at = self._clock()

    def _seen(self) -> list[SeenCall]:
        with self._lock:
            return list(self.seen)

    # --- serving -----------------------------------------------------------------------

    def _classify(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[str, str, str, str]:
        """(region, kind, action, identity) of an SES request; kind is "" for what is not
        counted."""
        path = request.path.split("?", 1)[0]
        if path.startswith(("/moto-api", "/quota-api")):
            return "", "", "", ""
        found = _REGION.search(request.headers.get("Authorization", ""))
        region = found[1] if found else "us-east-1"
        if path.startswith("/v2/"):
            send = request.command == "POST" and path.startswith(_SEND_PATHS)
            return (
                region,
                "send" if send else "request",
                f"{request.command} {path}",
                _v2_identity(path, body),
            )
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        action = (form.get("Action") or [""])[0]
        if not action:
            return "", "", "", ""
        identity = (form.get("Domain") or form.get("Identity") or [""])[0]
        return region, "send" if action in SEND_ACTIONS else "request", action, identity

    def _admit(
        self, region: str, kind: str, action: str, identity: str = "", key_id: str = ""
    ) -> bool:
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get((key_id, region, kind))
            if bucket is None:
                bucket = self._buckets[(key_id, region, kind)] = _Bucket(
                    self.rates[kind], self.burst, now
                )
            accepted = bucket.take(now)
            self.seen.append(SeenCall(now, region, kind, action, accepted, identity, key_id))
        return accepted

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        if request.path.startswith("/quota-api/"):
            self._quota_api(request)
            return
        region, kind, action, identity = self._classify(request, body)
        found = _KEY_ID.search(request.headers.get("Authorization", ""))
        key_id = found[1] if found else ""
        if kind and not self._admit(region, kind, action, identity, key_id):
            self._throttle(request, kind)
            return
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        conn = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            conn.request(request.command, request.path, body=body or None, headers=headers)
            answer = conn.getresponse()
            payload = answer.read()
            status, answer_headers = answer.status, answer.getheaders()
        finally:
            conn.close()
        kept = [
            (name, value)
            for name, value in answer_headers
            if name.lower()
            not in ("content-length", "transfer-encoding", "connection", "server", "date")
        ]
        self._answer(request, status, kept, payload)

    def _quota_api(self, request: BaseHTTPRequestHandler) -> None:
        """`GET /quota-api/seen`: counts per second; `GET /quota-api/calls`: every call;
        `POST /quota-api/reset`: start over."""
        path = request.path.split("?", 1)[0]
        answer: Any
        if path == "/quota-api/reset" and request.command == "POST":
            self.reset()
            answer = {"reset": True}
        elif path == "/quota-api/calls":
            answer = {"started_at": self.started_at, "calls": [asdict(c) for c in self._seen()]}
        else:
            answer = {
                kind: {str(s): list(c) for s, c in self.per_second(kind).items()}
                for kind in self.rates
            }
        payload = json.dumps(answer).encode()
        self._answer(request, 200, [("Content-Type", "application/json")], payload)

    @staticmethod
    def _throttle(request: BaseHTTPRequestHandler, kind: str) -> None:
        request_id = str(uuid.uuid4())
        message = "Maximum sending rate exceeded." if kind == "send" else "Rate exceeded"
        if request.path.startswith("/v2/"):
            payload = json.dumps({"message": message}).encode()
            headers = [
                ("Content-Type", "application/json"),
                ("x-amzn-ErrorType", "TooManyRequestsException"),
                ("x-amzn-RequestId", request_id),
            ]
            SesQuotaProxy._answer(request, 429, headers, payload)
            return
        xml = _V1_THROTTLED.format(message=message, request_id=request_id).encode()
        SesQuotaProxy._answer(request, 400, [("Content-Type", "text/xml")], xml)

    @staticmethod
    def _answer(
        request: BaseHTTPRequestHandler,
        status: int,
        headers: list[tuple[str, str]],
        payload: bytes,
    ) -> None:
        request.send_response(status)
        for name, value in headers:
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)


class SesQuotaSandbox(QuotaCounts):
    """`SesQuotaProxy` in a process of its own, like moto: its clock and its threads are
    never held up by the process that drives the test (a test's own work holding the
    interpreter would stamp arrivals late and bunch them). Read back over `/quota-api/`."""

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 1.0,
        send_rate: float = 1.0,
        burst: float = 1.0,
        port: int | None = None,
    ) -> None:
        self.upstream = upstream
        self.rate, self.send_rate, self.burst = rate, send_rate, burst
        self.port = port
        self.started_at = 0.0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise MotoError("the quota sandbox is not started")
        return f"http://127.0.0.1:{self.port}"

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
        if self.port is None:
            self.port = listening_port()
        self._process = subprocess.Popen(
            [
                sys.executable, "-m", "domainflow.sandbox.moto", self.upstream,
                "--port", str(self.port), "--rate", str(self.rate),
                "--send-rate", str(self.send_rate), "--burst", str(self.burst),
            ],
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        atexit.register(self.stop)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise MotoError(f"the quota sandbox exited with {self._process.returncode}")
            try:
                self.reset()
            except OSError:
                time.sleep(0.05)
            else:
                return
        raise MotoError(f"the quota sandbox did not answer on {self.url}")

    def stop(self) -> None:
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=10)

    def _request(self, method: str, path: str) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port or 0, timeout=30)
        try:
            conn.request(method, path, body=b"" if method == "POST" else None)
            answer = conn.getresponse()
            payload = answer.read()
        finally:
            conn.close()
        return json.loads(payload)

    def reset(self) -> None:
        """Forget what was seen and refill every bucket."""
        self._request("POST", "/quota-api/reset")

    def _seen(self) -> list[SeenCall]:
        answer = self._request("GET", "/quota-api/calls")
        self.started_at = float(answer["started_at"])
        return [SeenCall(**call) for call in answer["calls"]]


def _serve_quota() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="SES's quotas in front of an SES endpoint")
    parser.add_argument("upstream")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--send-rate", type=float, default=1.0)
    parser.add_argument("--burst", type=float, default=1.0)
    args = parser.parse_args()
    proxy = SesQuotaProxy(
        args.upstream, rate=args.rate, send_rate=args.send_rate, burst=args.burst, port=args.port
    )
    proxy.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    proxy.stop()


if __name__ == "__main__":
    _serve_quota()
