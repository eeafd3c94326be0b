"""A three-node RabbitMQ cluster of a test's own, run by `deploy/rabbitmq-cluster.sh`, and a
PostgreSQL cluster of its own (pg_createcluster), so tests can kill and restart servers
without touching the machine's, which other tests use."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

from domainflow.sandbox.ports import listening_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "rabbitmq-cluster.sh"


class RabbitCluster:
    """Three nodes on ports of their own; `kill` is `kill -9` of a node's own pid."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        # Each node serves its management API on its AMQP port + 10000 (the script's rule):
        # that port must be as safe from outgoing connections as the AMQP one.
        self.ports = [listening_port(span=2, spacing=10_000) for _ in range(3)]
        self.env = {
            **os.environ,
            "DOMAINFLOW_RABBITMQ_CLUSTER_DIR": str(workdir),
            "DOMAINFLOW_RABBITMQ_CLUSTER_NAME": f"dftest{uuid.uuid4().hex[:6]}n",
            "DOMAINFLOW_RABBITMQ_CLUSTER_PORTS": " ".join(map(str, self.ports)),
            "DOMAINFLOW_RABBITMQ_CLUSTER_DIST_PORTS": " ".join(
                str(listening_port()) for _ in range(3)
            ),
        }
        self._pids: set[int] = set()

    def run(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [str(SCRIPT), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmq-cluster.sh {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout

    def start(self) -> None:
        self.run("start")
        self._pids.update(self.pid(n) for n in (1, 2, 3))

    @property
    def urls(self) -> list[str]:
        return list(json.loads(self.run("urls")))

    def url(self, node: int) -> str:
        return self.urls[node - 1]

    def pid(self, node: int) -> int:
        return int(self.run("pid", str(node)).strip())

    def kill(self, node: int) -> None:
        """`kill -9` the node's Erlang VM and wait until it is gone."""
        pid = self.pid(node)
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)

    def revive(self, node: int) -> None:
        self.run("start-node", str(node))
        self._pids.add(self.pid(node))

    def ctl(self, node: int, *args: str) -> str:
        return self.run("ctl", str(node), *args)

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.run("stop", timeout=120)
        for pid in self._pids:  # whatever a failed stop left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of ours lingers as a zombie until reaped; the VM is a grandchild.
    with contextlib.suppress(OSError):
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    return False


class PostgresCluster:
    """A PostgreSQL cluster of the installed version made with pg_createcluster on a port of
    its own (trust on loopback), so a test can restart it; dropped afterwards."""

    def __init__(self) -> None:
        versions = sorted(Path("/etc/postgresql").iterdir(), key=lambda p: int(p.name))
        self.version = versions[-1].name
        self.name = f"dftest_{uuid.uuid4().hex[:6]}"
        self.port = listening_port()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def _ctl(self, action: str) -> None:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def create(self) -> None:
        subprocess.run(
            ["pg_createcluster", "-p", str(self.port), self.version, self.name],
            check=True,
            capture_output=True,
            timeout=120,
        )
        conf = Path("/etc/postgresql") / self.version / self.name
        (conf / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        with (conf / "postgresql.conf").open("a") as settings:
            settings.write("listen_addresses = '127.0.0.1'\nfsync = off\n")
        self._ctl("start")

    def restart(self) -> None:
        self._ctl("restart")

    def drop(self) -> None:
        subprocess.run(
            ["pg_dropcluster", "--stop", self.version, self.name],
            check=False,
            capture_output=True,
            timeout=120,
        )


def installed() -> str | None:
    """Why these clusters cannot run here, or None when they can."""
    for tool in ("rabbitmqctl", "pg_createcluster"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if os.geteuid() != 0:
        return "pg_createcluster and the cluster's data directories need root here"
    return None
