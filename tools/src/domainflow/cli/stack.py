"""The whole stack on one machine: sandboxes where no real endpoint is set, then the services.

`run` keeps it in the foreground (Ctrl-C stops everything); `up` starts `run` in the
background and returns once every service answers `/readyz`; `down` stops it. The same
`LocalStack` class lets end-to-end tests start, kill and restart single services.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SERVICES = ("api", "provisioner", "verifier", "notifier")
HEALTH_PORTS = {"provisioner": 8001, "verifier": 8002, "notifier": 8003}
API_METRICS_PORT = 8004


def _true(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("DOMAINFLOW_STATE_DIR", "var")).resolve()


def health_url(service: str, env: Mapping[str, str], replica: int = 0) -> str:
    if service == "api":
        port = int(env.get("DOMAINFLOW_API_PORT", "8000")) + replica
        host = env.get("DOMAINFLOW_API_HOST", "127.0.0.1")
    else:
        key = service.upper()
        port = int(env.get(f"DOMAINFLOW_{key}_HEALTH_PORT", str(HEALTH_PORTS[service])))
        host = env.get(f"DOMAINFLOW_{key}_HEALTH_HOST", "127.0.0.1")
    return f"http://{host}:{port}/readyz"


def metrics_port(env: Mapping[str, str], replica: int = 0) -> int:
    """Where an api replica's operator listener (`/metrics`) answers: the replicas' ports
    follow each other, as their API ports do (`0`, a port the kernel picks, stays `0`)."""
    port = int(env.get("DOMAINFLOW_API_METRICS_PORT", str(API_METRICS_PORT)))
    return port + replica if port else 0


def metrics_url(service: str, env: Mapping[str, str], replica: int = 0) -> str:
    """`/metrics` of a replica: the api's operator listener, a consumer's health port."""
    if service == "api":
        host = env.get("DOMAINFLOW_API_METRICS_HOST", "127.0.0.1")
        return f"http://{host}:{metrics_port(env, replica)}/metrics"
    return health_url(service, env, replica).removesuffix("/readyz") + "/metrics"


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a service's log, so a failed start says why where it is reported."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"(unreadable: {error})"


def is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - our own loopback URL
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError, TimeoutError):
        return False


_SECRET_NAMES = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|ACCESS_KEY|CREDENTIAL", re.IGNORECASE)


def public_settings(env: Mapping[str, str], chosen: Mapping[str, str]) -> dict[str, str]:
    """The settings `domainflow doctor` may adopt from a running stack: what the stack chose
    for its sandboxes, and every other DOMAINFLOW_/AWS_ setting that is no secret (a name
    that says so, or a URL that carries a password)."""
    kept: dict[str, str] = {}
    for name, value in env.items():
        if not name.startswith(("DOMAINFLOW_", "AWS_")):
            continue
        if name in chosen or not (_SECRET_NAMES.search(name) or _has_password(value)):
            kept[name] = value
    return kept


def _has_password(value: str) -> bool:
    try:
        return urlsplit(value).password is not None
    except ValueError:
        return False


def write_state(path: Path, settings: Mapping[str, str]) -> None:
    """Written readable by its owner alone (0600), even though it holds no secret."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(dict(settings), out)


class LocalStack:
    """Sandboxes plus service processes, each replica its own OS process."""

    def __init__(self, env: Mapping[str, str] | None = None, root: Path | None = None) -> None:
        self.env: dict[str, str] = dict(os.environ if env is None else env)
        self.root = root or state_dir(self.env)
        self.root.mkdir(parents=True, exist_ok=True)
        self.processes: dict[tuple[str, int], subprocess.Popen[bytes]] = {}
        self._sandboxes: list[Any] = []
        #: What the stack chose for its sandboxes (never a secret of the operator's).
        self._chosen: dict[str, str] = {}

    def _choose(self, **settings: str) -> None:
        self.env.update(settings)
        self._chosen.update(settings)

    # --- sandboxes ------------------------------------------------------------------------

    def start_sandboxes(self) -> None:
        """Start moto (SES) and the DoH resolver unless real endpoints are configured."""
        if not self.env.get("AWS_ENDPOINT_URL") and not self.env.get("AWS_ACCESS_KEY_ID"):
            from domainflow.sandbox.moto import MotoSandbox

            moto = MotoSandbox(port=int(self.env.get("DOMAINFLOW_SANDBOX_SES_PORT", "4566")))
            moto.start()
            self._sandboxes.append(moto)
            endpoint = moto.url
            if _true(self.env.get("DOMAINFLOW_SANDBOX_SES_QUOTAS", "false")):
                endpoint = self._start_quota_proxy(moto.url)
            self._choose(
                AWS_ENDPOINT_URL=endpoint,
                AWS_ACCESS_KEY_ID="testing",
                AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto's conventional dummy
            )
            self.env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
            self._sandbox_accounts(moto)
            from email.utils import parseaddr

            from domainflow.notifier.settings import NotifierSettings

            # The notifier's sender must be verified in SES; in the sandbox we verify it.
            sender = self.env.get("DOMAINFLOW_NOTIFY_FROM") or NotifierSettings().notify.sender
            moto.verify_sender(parseaddr(sender)[1], self.env["AWS_DEFAULT_REGION"])
            print(f"sandbox: SES (moto) at {moto.url}", file=sys.stderr)
        if not self.env.get("DOMAINFLOW_DOH_URL"):
            from domainflow.sandbox.dns import DnsSandbox

            dns = DnsSandbox(
                workdir=self.root / "sandbox" / "dns",
                doh_port=int(self.env.get("DOMAINFLOW_SANDBOX_DOH_PORT", "8443")),
            )
            dns.start()
            self._sandboxes.append(dns)
            self._choose(DOMAINFLOW_DOH_URL=dns.doh_url, DOMAINFLOW_DOH_CA_FILE=str(dns.ca_file))
            # The sandbox resolver serves names set aside for tests and examples: accept them.
            if "DOMAINFLOW_SPECIAL_USE_ALLOWED" not in self.env:
                self._choose(DOMAINFLOW_SPECIAL_USE_ALLOWED='["example", "example.com", "test"]')
            print(f"sandbox: DNS-over-HTTPS at {dns.doh_url}", file=sys.stderr)
        write_state(self.root / "stack.json", public_settings(self.env, self._chosen))

    def _sandbox_accounts(self, moto: Any) -> None:
        """Several SES accounts in moto (`DOMAINFLOW_SANDBOX_SES_ACCOUNTS`), each reached with
        keys of its own, listed as the services' accounts unless the operator listed some."""
        count = int(self.env.get("DOMAINFLOW_SANDBOX_SES_ACCOUNTS", "0") or 0)
        if count < 1 or self.env.get("DOMAINFLOW_SES_ACCOUNTS"):
            return
        accounts = []
        for n in range(1, count + 1):
            key, secret = moto.account_keys(f"{100000000000 + n}")
            accounts.append(
                {"name": f"sandbox-{n}", "access_key_id": key, "secret_access_key": secret}
            )
        self._choose(DOMAINFLOW_SES_ACCOUNTS=json.dumps(accounts))
        print(f"sandbox: {count} SES accounts in moto", file=sys.stderr)

    def _start_quota_proxy(self, moto_url: str) -> str:
        """SES's quotas in front of moto, at the rates the services' budget is set to."""
        from domainflow.sandbox.moto import SesQuotaProxy

        proxy = SesQuotaProxy(
            moto_url,
            rate=float(self.env.get("DOMAINFLOW_SES_RATE", "1")),
            send_rate=float(self.env.get("DOMAINFLOW_SES_SEND_RATE", "1")),
            port=int(self.env.get("DOMAINFLOW_SANDBOX_SES_QUOTA_PORT", "4567")),
        )
        proxy.start()
        self._sandboxes.append(proxy)
        print(
            f"sandbox: SES quotas at {proxy.url} ({proxy.rates['request']:g} request/s,"
            f" {proxy.rates['send']:g} mail/s; calls seen per second: {proxy.url}/quota-api/seen)",
            file=sys.stderr,
        )
        return proxy.url

    # --- services -------------------------------------------------------------------------

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "domainflow.cli", "migrate"],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start_service(
        self, service: str, replica: int = 0, extra_env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        env = dict(self.env)
        if service == "api" and replica:
            env["DOMAINFLOW_API_PORT"] = str(int(env.get("DOMAINFLOW_API_PORT", "8000")) + replica)
            env["DOMAINFLOW_API_METRICS_PORT"] = str(metrics_port(env, replica))
        env.update(extra_env or {})
        log = (self.root / f"{service}-{replica}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "domainflow.cli", "serve", service],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes[(service, replica)] = process
        return process

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for (service, replica), process in self.processes.items():
            url = health_url(service, self.env, replica)
            while not is_ready(url):
                if process.poll() is not None:
                    log = self.root / f"{service}-{replica}.log"
                    raise RuntimeError(
                        f"{service} exited with {process.returncode}; the end of {log}:\n"
                        f"{log_tail(log)}"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{service} did not become ready at {url}")
                time.sleep(0.2)

    def stop_service(self, service: str, replica: int = 0, *, kill: bool = False) -> None:
        process = self.processes.pop((service, replica), None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def start(self, api_replicas: int = 1) -> None:
        self.start_sandboxes()
        self.migrate()
        for service in SERVICES:
            for replica in range(api_replicas if service == "api" else 1):
                self.start_service(service, replica)
        self.wait_ready()

    def stop(self) -> None:
        for service, replica in list(self.processes):
            self.stop_service(service, replica)
        for sandbox in reversed(self._sandboxes):
            with contextlib.suppress(Exception):
                sandbox.stop()
        self._sandboxes.clear()

    def supervise(self) -> None:
        """Restart a service that died (a killed provisioner resumes its sagas on restart)."""
        for (service, replica), process in list(self.processes.items()):
            if process.poll() is not None:
                print(
                    f"stack: {service} exited ({process.returncode}); restarting", file=sys.stderr
                )
                self.start_service(service, replica)


def _run() -> int:
    stack = LocalStack()
    stopping = False

    def on_signal(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start(api_replicas=int(stack.env.get("DOMAINFLOW_API_REPLICAS", "1")))
        port = stack.env.get("DOMAINFLOW_API_PORT", "8000")
        print(
            f"domainflow is up: http://127.0.0.1:{port}/api/v1 (Ctrl-C stops it); metrics at "
            + ", ".join(metrics_url(service, stack.env) for service in SERVICES),
            file=sys.stderr,
        )
        (stack.root / "stack.ready").write_text(str(os.getpid()))
        while not stopping:
            time.sleep(0.5)
            stack.supervise()
    finally:
        with contextlib.suppress(FileNotFoundError):
            (stack.root / "stack.ready").unlink()
        stack.stop()
    return 0


def _up() -> int:
    root = state_dir()
    root.mkdir(parents=True, exist_ok=True)
    pidfile = root / "stack.pid"
    if pidfile.exists() and _alive(int(pidfile.read_text())):
        print(f"already up (pid {pidfile.read_text()}); `make down` stops it", file=sys.stderr)
        return 0
    with contextlib.suppress(FileNotFoundError):
        (root / "stack.ready").unlink()
    log = (root / "stack.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "domainflow.cli", "stack", "run"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pidfile.write_text(str(process.pid))
    deadline = time.monotonic() + 120
    while not (root / "stack.ready").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            print(f"the stack did not come up; see {root / 'stack.log'}", file=sys.stderr)
            return 1
        time.sleep(0.3)
    port = os.environ.get("DOMAINFLOW_API_PORT", "8000")
    print(f"domainflow is up: http://127.0.0.1:{port}/api/v1 (logs in {root})")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _down() -> int:
    pidfile = state_dir() / "stack.pid"
    if not pidfile.exists():
        print("not running", file=sys.stderr)
        return 0
    pid = int(pidfile.read_text())
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
    pidfile.unlink()
    print("domainflow is down")
    return 0


def _status() -> int:
    env = os.environ
    ok = True
    for service in SERVICES:
        ready = is_ready(health_url(service, env))
        ok = ok and ready
        print(f"{service:12} {'ready' if ready else 'DOWN'}")
    return 0 if ok else 1


def main(action: str) -> int:
    return {"run": _run, "up": _up, "down": _down, "status": _status}[action]()
