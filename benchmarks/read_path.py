"""Benchmark: the api's `GET /api/v1/domains/{id}` beside a bare Litestar app doing the same read.

One api replica (with its real key check, envelope and records) and the bare app
(`bare_read_app.py`: one asyncpg query, the row as JSON) are served by the same uvicorn
settings on the same database of N domains, and loaded in turn by the same wrk script
(random ids, one thread, 32 connections). Each is loaded twice, alternating, and the better
run of each kept, so a passing hiccup on this shared machine decides nothing. Prints each
one's requests/s and latency percentiles and the ratios: project ÷ bare (throughput, the
issue's bar is 0.8) and project p99 ÷ bare p99 (at most 2), and the same against a third
server, the bare app on the services' own pool setting (no reset query on release), which
shows what the api's own code costs apart from that setting. Run:

    .venv/bin/python benchmarks/read_path.py [--domains 100] [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg

from domainflow.kit.database import drop_database, ensure_database
from domainflow.kit.settings import DEFAULT_POSTGRES
from domainflow.sandbox.ports import listening_port

HERE = Path(__file__).resolve().parent
POSTGRES = os.environ.get("DOMAINFLOW_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
AMQP_ROOT = os.environ.get("DOMAINFLOW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")
BIN = Path(sys.executable).parent

WRK_SCRIPT = """
local ids = {}
for line in io.lines("%(ids)s") do ids[#ids + 1] = line end
math.randomseed(%(seed)d)
request = function()
  local path = "/api/v1/domains/" .. ids[math.random(#ids)]
  return wrk.format("GET", path, {["Authorization"] = "Bearer %(key)s"})
end
"""

UVICORN_FLAGS = ["--workers", "1", "--no-access-log", "--log-level", "warning"]


def uvicorn_flags() -> list[str]:
    """The fastest loop and HTTP parser installed, the same for both apps."""
    flags = list(UVICORN_FLAGS)
    try:
        import uvloop  # noqa: F401

        flags += ["--loop", "uvloop"]
    except ImportError:
        flags += ["--loop", "asyncio"]
    try:
        import httptools  # noqa: F401

        flags += ["--http", "httptools"]
    except ImportError:
        flags += ["--http", "h11"]
    return flags


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url} exited at start:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback
                return
        except urllib.error.HTTPError:
            return  # it answers: ready enough for the bare app's made-up path
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {seconds} s:\n{log.read_text()[-3000:]}")


def serve(
    target: list[str], env: dict[str, str], port: int, log: Path, ready_path: str
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            str(BIN / "uvicorn"),
            *target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *uvicorn_flags(),
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=HERE,
    )
    wait_ready(f"http://127.0.0.1:{port}{ready_path}", process, log)
    return process


async def seed(url: str, count: int) -> list[str]:
    """N pending domains of one team, as a provisioned domain's row stands."""
    conn = await asyncpg.connect(url)
    try:
        team_id = await conn.fetchval("SELECT id FROM teams WHERE name = 'bench'")
        ids = [f"mdom_bench{i:06d}{uuid.uuid4().hex[:8]}" for i in range(count)]
        tokens = [f"tok{i}{uuid.uuid4().hex[:20]}" for i in range(3)]
        await conn.executemany(
            "INSERT INTO domains (public_id, team_id, domain, status, region, dkim_tokens,"
            " request_id) VALUES ($1, $2, $3, 'pending', 'us-east-1', $4, 'bench')",
            [(pid, team_id, f"mail.d{i:05d}.bench.example", tokens) for i, pid in enumerate(ids)],
        )
    finally:
        await conn.close()
    return ids


def wrk(port: int, script: Path, args: argparse.Namespace) -> dict[str, float]:
    done = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{args.connections}",
            f"-d{args.seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    out = done.stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw error answers:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    result = {"rps": rps}
    for label in ("50", "99"):
        match = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out)
        assert match is not None, out
        value, unit = float(match.group(1)), match.group(2)
        result[f"p{label}_ms"] = value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return result


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    return max(runs, key=lambda r: r["rps"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    run = uuid.uuid4().hex[:8]
    db_url = f"{POSTGRES}/dfbench_read_{run}"
    vhost = f"domainflow-bench-{run}"
    asyncio.run(ensure_database(db_url))
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    processes: list[subprocess.Popen[bytes]] = []
    workdir = Path(tempfile.mkdtemp(prefix="dfbench-read-"))
    try:
        env = {
            **os.environ,
            "DOMAINFLOW_API_DATABASE_URL": db_url,
            "DOMAINFLOW_AMQP_URL": f"{AMQP_ROOT}/{quote(vhost, safe='')}",
            "DOMAINFLOW_LOG_LEVEL": "WARNING",
            "DOMAINFLOW_API_METRICS_PORT": "0",  # nobody scrapes it here
            "BARE_DATABASE_URL": db_url,
        }
        api_port, bare_port = listening_port(), listening_port()
        processes.append(
            serve(
                ["--factory", "domainflow.api.app:create_app"],
                env,
                api_port,
                workdir / "api.log",
                "/readyz",
            )
        )
        key = subprocess.run(
            [str(BIN / "domainflow"), "keys", "create", "--team", "bench"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        ids = asyncio.run(seed(db_url, args.domains))
        processes.append(
            serve(["bare_read_app:app"], env, bare_port, workdir / "bare.log", "/nothing")
        )
        tuned_port = listening_port()
        processes.append(
            serve(
                ["bare_read_app:app"],
                {**env, "BARE_POOL": "kit"},
                tuned_port,
                workdir / "bare-kit.log",
                "/nothing",
            )
        )
        (workdir / "ids.txt").write_text("\n".join(ids) + "\n")
        script = workdir / "read.lua"
        script.write_text(WRK_SCRIPT % {"ids": workdir / "ids.txt", "seed": 7, "key": key})

        quick = argparse.Namespace(**{**vars(args), "seconds": 2})
        wrk(api_port, script, quick)  # warm both: first requests pay for imports and pools
        wrk(bare_port, script, quick)
        wrk(tuned_port, script, quick)
        project_runs, bare_runs, tuned_runs = [], [], []
        for _ in range(args.rounds):
            bare_runs.append(wrk(bare_port, script, args))
            project_runs.append(wrk(api_port, script, args))
            tuned_runs.append(wrk(tuned_port, script, args))
        report(best(project_runs), best(bare_runs), best(tuned_runs), args)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        asyncio.run(drop_database(db_url))
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False, timeout=120)
        shutil.rmtree(workdir, ignore_errors=True)


def report(
    project: dict[str, Any], bare: dict[str, Any], tuned: dict[str, Any], args: argparse.Namespace
) -> None:
    print(
        f"read path: GET /api/v1/domains/{{id}}, {args.domains} domains, "
        f"wrk -t1 -c{args.connections} -d{args.seconds}s, best of {args.rounds}"
    )
    for name, r in (("project", project), ("bare", bare), ("bare+kit", tuned)):
        print(
            f"  {name:8s} {r['rps']:9.0f} req/s   p50 {r['p50_ms']:6.2f} ms   "
            f"p99 {r['p99_ms']:6.2f} ms"
        )
    print(f"  throughput ratio (project / bare): {project['rps'] / bare['rps']:.2f}  (bar: >= 0.8)")
    p99 = project["p99_ms"] / bare["p99_ms"]
    print(f"  p99 ratio (project / bare):        {p99:.2f}  (bar: <= 2)")
    rps, p99 = project["rps"] / tuned["rps"], project["p99_ms"] / tuned["p99_ms"]
    print(
        "  against the bare app on the kit's pool (no reset query on release): "
        f"throughput {rps:.2f}, p99 {p99:.2f}"
    )


if __name__ == "__main__":
    main()
