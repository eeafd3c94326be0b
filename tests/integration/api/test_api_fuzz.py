"""schemathesis against a running api, every check: the committed OpenAPI document is the API.

The api runs as it does in production (uvicorn in a process of its own, its own database and
vhost) with a real key; schemathesis drives every operation of docs/openapi.json from its
examples, the schema's edges, random data and the document's links (create, then use the id),
in a bounded budget, and the test fails on any failure of any check, or on any traceback
or logged exception in the api's own log during the run (a 500 is not the only sign of a
fault: a handler may fail and still answer). Generation is deterministic (no random draw,
no example database between runs): a CI failure is the same failure on a laptop.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from domainflow.api.teams.service import create_key
from domainflow.api.unit_of_work import PostgresUnitOfWork
from domainflow.kit.database import Database
from domainflow.sandbox.ports import listening_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
#: Cases per operation and phase, and the whole run's budget: together they keep the test
#: within a couple of minutes on a busy machine; more finds more (raise them when hunting).
MAX_EXAMPLES = 10
MAX_SECONDS = 60


@dataclass
class RunningApi:
    url: str
    database_url: str
    key: str
    log: Path


def faults_logged(text: str) -> list[str]:
    """The lines of a service's log that show a fault: a traceback, or a record logged with
    its exception (structlog's `exception` field)."""
    faults = []
    for line in text.splitlines():
        if "Traceback (most recent call last)" in line:
            faults.append(line)
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and ("exception" in record or "exc_info" in record):
            faults.append(line[:2000])
    return faults


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback
            return True
    except (urllib.error.URLError, OSError):
        return False


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise AssertionError(f"the api exited at start:\n{log.read_text()[-3000:]}")
        if _answers(url):
            return
        time.sleep(0.1)
    raise AssertionError(f"the api was not ready in a minute:\n{log.read_text()[-3000:]}")


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(BIN / "domainflow"), "serve", "api"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


@pytest.fixture(scope="module")
async def running_api(
    database_url: Callable[[str], Awaitable[str]],
    amqp_vhost: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[RunningApi]:
    db_url = await database_url("apifuzz")
    port = listening_port()
    env = {
        **os.environ,
        "DOMAINFLOW_API_DATABASE_URL": db_url,
        "DOMAINFLOW_AMQP_URL": amqp_vhost("apifuzz"),
        "DOMAINFLOW_API_HOST": "127.0.0.1",
        "DOMAINFLOW_API_PORT": str(port),
        "DOMAINFLOW_API_METRICS_PORT": str(listening_port()),
        # No provisioner runs: a create answers 202 (accepted, provisioning) after this wait.
        "DOMAINFLOW_CREATE_WAIT_SECONDS": "0.2",
        "DOMAINFLOW_VERIFY_WAIT_SECONDS": "0.2",
        # The fuzzer writes far faster than a team's budget allows; test_api_throttle.py
        # covers 429 (the document still lists it for every write).
        "DOMAINFLOW_DOMAIN_WRITE_RATE": "0",
        "DOMAINFLOW_LOG_LEVEL": "WARNING",
        "DOMAINFLOW_LOG_FORMAT": "json",  # read back by faults_logged
    }
    log = tmp_path_factory.mktemp("apifuzz") / "api.log"
    process = await asyncio.to_thread(_start, env, log)
    try:
        url = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(_wait_ready, f"{url}/readyz", process, log)
        db = await Database.connect(db_url, size=1)
        try:
            key = await create_key(
                PostgresUnitOfWork(db),
                team="fuzz",
                owner_email="owner@example.com",
                role="root:full",
                prefix="smx",
            )
        finally:
            await db.close()
        yield RunningApi(url, db_url, key.plaintext, log)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)


def test_a_logged_fault_is_found() -> None:
    """The log check can fail: a traceback or an exception record is a fault; a warning or
    an error without an exception is not."""
    log = "\n".join(
        [
            json.dumps({"event": "outbox.relayed", "level": "warning"}),
            json.dumps({"event": "domain.needs_operator", "level": "error"}),
            json.dumps({"event": "http.unhandled", "level": "error", "exception": "Trace..."}),
            "Traceback (most recent call last):",
            '  File "x.py", line 1, in <module>',
        ]
    )
    found = faults_logged(log)
    assert len(found) == 2
    assert "http.unhandled" in found[0]
    assert found[1].startswith("Traceback")


async def test_schemathesis_finds_nothing(
    running_api: RunningApi, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    command = [
        str(BIN / "st"),
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        str(ROOT / "docs" / "openapi.json"),
        "--url",
        running_api.url,
        "--header",
        f"Authorization: Bearer {running_api.key}",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(MAX_SECONDS),
        # One worker: hypothesis describes strategies with `ast`, which CPython 3.11 cannot
        # run in two threads at once (SystemError: AST constructor recursion depth mismatch).
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--output-truncate",
        "true",
        # The same cases every run, no example database carried between runs (a seed is
        # not used in this mode). Only the time budget can end a slow run sooner.
        "--generation-deterministic",
    ]
    run = await asyncio.to_thread(
        subprocess.run,
        command,
        capture_output=True,
        text=True,
        timeout=MAX_SECONDS + 120,
        cwd=tmp_path,  # where schemathesis keeps its cache
    )
    summary = run.stdout[run.stdout.find("=" * 10) :] if "=" * 10 in run.stdout else run.stdout
    # Printed at the end of the run (tests/conftest.py), from whichever worker ran it.
    request.node.user_properties.append(("summary", summary))
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    faults = faults_logged(running_api.log.read_text(errors="replace"))
    assert faults == [], "the api logged faults while fuzzed:\n" + "\n".join(faults[:20])

    db = await Database.connect(running_api.database_url, size=1)
    try:
        async with db.pool.acquire() as conn:
            accepted = await conn.fetchval("SELECT count(*) FROM domains")
    finally:
        await db.close()
    assert accepted > 0, "schemathesis never got a POST /domains accepted"
