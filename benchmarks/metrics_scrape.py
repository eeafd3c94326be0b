"""Benchmark: what a scrape of the api's `/metrics` costs, and what scrapers cost its readers.

Api replicas served by uvicorn (the services' default pool of 10 connections) over scratch
databases; `/metrics` on their operator listeners. Two figures, each a ratio of two
measurements taken in the same run:

- scrape cost: two api replicas alike but for their databases, one of 100 domains, one of
  `--domains` (default 100,000), each also holding as many deleted ones (rows inserted
  straight into the database, as a database that has lived looks); `--scrapes` sequential
  scrapes of each, alternating, and the ratio of their medians, which should be about 1.
  For reference it also times the query the counts replaced (a count over every row).
- readers under scrapers: the p99 of an authenticated `GET /api/v1/domains/{id}` (wrk,
  `--connections` connections) while nothing else runs, and while 64 scrapers scrape
  back to back (a second wrk on the operator port). Rounds alternate quiet and scraped,
  and the better of each is kept, so a passing load elsewhere on this shared machine
  decides nothing; the bar is scraped p99 / quiet p99 <= 2. The 64 scrapers all scrape at
  once every `--interval` seconds (default 1: 64 Prometheus servers on a 1 s interval,
  far more than any install has); `--interval 0` has each scrape again as soon as it is
  answered, a flood that measures the CPU the replica spends answering rather than what
  scrapes take from its database pool.

Run:

    .venv/bin/python benchmarks/metrics_scrape.py [--domains 100000] [--seconds 10] [--interval 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote

import aiohttp
import asyncpg
from read_path import AMQP_ROOT, BIN, POSTGRES, WRK_SCRIPT, rabbitmqctl, serve, wrk

from domainflow.api.domains.repository import DOMAIN_GAUGES
from domainflow.kit.database import drop_database, ensure_database
from domainflow.sandbox.ports import listening_port

SCRAPERS = 64

#: What a scrape ran before the counts were kept (migration 007), for comparison.
FULL_COUNT = (
    "SELECT s.status, count(d.id) AS value"
    " FROM (VALUES ('provisioning'), ('pending'), ('verified'), ('failed'), ('deleting'))"
    " AS s (status) LEFT JOIN domains d ON d.status = s.status GROUP BY s.status"
)


async def seed(url: str, first: int, last: int) -> list[str]:
    """Domains `first`..`last - 1` of the team `bench`: every other one deleted, the live ones
    spread over the states; inserted in bulk, as a migration or an import would."""
    conn = await asyncpg.connect(url)
    try:
        team_id = await conn.fetchval("SELECT id FROM teams WHERE name = 'bench'")
        await conn.execute(
            "INSERT INTO domains (public_id, team_id, domain, status, region, dkim_tokens,"
            " request_id, deleted_at)"
            " SELECT 'mdom_bench' || n, $1, 'mail.d' || n || '.bench.example',"
            " CASE WHEN n % 2 = 1 THEN 'deleted'"
            " ELSE (ARRAY['pending', 'verified', 'verified', 'failed', 'provisioning'])"
            "[1 + (n / 2) % 5] END,"
            " 'us-east-1', ARRAY['tok1', 'tok2', 'tok3'], 'bench',"
            " CASE WHEN n % 2 = 1 THEN now() END"
            " FROM generate_series($2::int, $3::int - 1) AS n",
            team_id,
            first,
            last,
        )
        await conn.execute("ANALYZE domains")
        rows = await conn.fetch(
            "SELECT public_id FROM domains WHERE status <> 'deleted' ORDER BY id LIMIT 1000"
        )
    finally:
        await conn.close()
    return [r["public_id"] for r in rows]


def scrape_times(url: str, count: int) -> list[float]:
    """Seconds each of `count` sequential scrapes took, answer read in full."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 - loopback
            answer.read()
        times.append(time.perf_counter() - started)
    return times


async def query_times(urls: dict[int, str], queries: list[str], count: int) -> dict[int, float]:
    """Median seconds the queries take together on each database, the databases in turn."""
    conns = {size: await asyncpg.connect(url) for size, url in urls.items()}
    times: dict[int, list[float]] = {size: [] for size in urls}
    try:
        for _ in range(count):
            for size, conn in conns.items():
                started = time.perf_counter()
                for query in queries:
                    await conn.fetch(query)
                times[size].append(time.perf_counter() - started)
    finally:
        for conn in conns.values():
            await conn.close()
    return {size: statistics.median(found) for size, found in times.items()}


def scrapers(port: int, seconds: int, interval: float) -> subprocess.Popen[str]:
    """64 scrapers in another process, all scraping at once every `interval` seconds (`0`:
    each again as soon as it is answered)."""
    return subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--scrape-only",
            f"http://127.0.0.1:{port}/metrics",
            "--seconds",
            str(seconds),
            "--interval",
            str(interval),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def scrape_for(url: str, seconds: float, interval: float) -> None:
    """What `scrapers` runs: prints the scrapes answered, and fails on any other answer."""
    answered = 0
    failed: list[str] = []
    deadline = time.monotonic() + seconds

    async def scraper(session: aiohttp.ClientSession) -> None:
        nonlocal answered
        tick = time.monotonic()
        while time.monotonic() < deadline:
            async with session.get(url) as answer:
                await answer.read()
                if answer.status == 200:
                    answered += 1
                else:
                    failed.append(str(answer.status))
            tick += interval
            await asyncio.sleep(max(0.0, tick - time.monotonic()))

    connector = aiohttp.TCPConnector(limit=SCRAPERS)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(scraper(session) for _ in range(SCRAPERS)))
    print(f"{answered} scrapes answered in {seconds:g} s by {SCRAPERS} scrapers")
    if failed:
        raise SystemExit(f"scrapes failed: {failed[:10]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="seconds between one scraper's scrapes (0: back to back)",
    )
    parser.add_argument("--scrape-only", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scrape_only:
        asyncio.run(scrape_for(args.scrape_only, args.seconds, args.interval))
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    run = uuid.uuid4().hex[:8]
    small, large = 100, args.domains
    db_urls = {size: f"{POSTGRES}/dfbench_metrics_{size}_{run}" for size in (small, large)}
    vhost = f"domainflow-bench-{run}"
    for url in db_urls.values():
        asyncio.run(ensure_database(url))
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    workdir = Path(tempfile.mkdtemp(prefix="dfbench-metrics-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        # One api replica per database, alike but for the number of domains in it.
        ports: dict[int, tuple[int, int]] = {}
        keys: dict[int, str] = {}
        for size, url in db_urls.items():
            api_port, metrics_port = listening_port(), listening_port()
            env = {
                **os.environ,
                "DOMAINFLOW_API_DATABASE_URL": url,
                "DOMAINFLOW_AMQP_URL": f"{AMQP_ROOT}/{quote(vhost, safe='')}",
                "DOMAINFLOW_LOG_LEVEL": "WARNING",
                "DOMAINFLOW_API_METRICS_PORT": str(metrics_port),
            }
            processes.append(
                serve(
                    ["--factory", "domainflow.api.app:create_app"],
                    env,
                    api_port,
                    workdir / f"api-{size}.log",
                    "/readyz",
                )
            )
            ports[size] = (api_port, metrics_port)
            keys[size] = subprocess.run(
                [str(BIN / "domainflow"), "keys", "create", "--team", "bench"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        asyncio.run(seed(db_urls[small], 0, small * 2))  # 100 live, 100 deleted
        ids = asyncio.run(seed(db_urls[large], 0, large * 2))

        # --- scrape cost at 100 and at N domains, scrapes alternating between the two ----
        urls = {size: f"http://127.0.0.1:{ports[size][1]}/metrics" for size in ports}
        times: dict[int, list[float]] = {small: [], large: []}
        for size in (small, large):
            scrape_times(urls[size], 20)  # warm
        for _ in range(args.scrapes):
            for size in (small, large):
                times[size] += scrape_times(urls[size], 1)
        gauges = asyncio.run(query_times(db_urls, [g.query for g in DOMAIN_GAUGES], 200))
        full = asyncio.run(query_times(db_urls, [FULL_COUNT], 20))
        scrape = {size: statistics.median(found) for size, found in times.items()}
        report(args, scrape, gauges, full)

        # --- an authenticated read, quiet and under 64 scrapers (N domains) --------------
        api_port, metrics_port = ports[large]
        (workdir / "ids.txt").write_text("\n".join(ids) + "\n")
        script = workdir / "read.lua"
        script.write_text(WRK_SCRIPT % {"ids": workdir / "ids.txt", "seed": 7, "key": keys[large]})
        wrk(api_port, script, argparse.Namespace(**{**vars(args), "seconds": 2}))  # warm
        quiet_runs, scraped_runs, scrapes_done = [], [], []
        for _ in range(args.rounds):
            quiet_runs.append(wrk(api_port, script, args))
            storm = scrapers(metrics_port, args.seconds + 2, args.interval)
            time.sleep(1)  # the scrapers are all at work before the readers start
            scraped_runs.append(wrk(api_port, script, args))
            out, _ = storm.communicate(timeout=args.seconds + 60)
            if storm.returncode != 0:
                raise SystemExit(f"the scrapers failed:\n{out}")
            scrapes_done.append(out.strip().splitlines()[-1])
        quiet = min(r["p99_ms"] for r in quiet_runs)
        scraped = min(r["p99_ms"] for r in scraped_runs)
        pace = f"every {args.interval:g} s" if args.interval else "back to back"
        print(
            f"authenticated GET /api/v1/domains/{{id}} at {large:,} domains,"
            f" wrk -t1 -c{args.connections} -d{args.seconds}s, best of {args.rounds};"
            f" {SCRAPERS} scrapers scraping at once {pace}"
        )
        print(f"  quiet:              p99 {quiet:7.2f} ms   ({_rounds(quiet_runs)})")
        print(f"  {SCRAPERS} scrapers:        p99 {scraped:7.2f} ms   ({_rounds(scraped_runs)})")
        print(f"  scrapers' work:     {'; '.join(s.strip() for s in scrapes_done)}")
        print(f"  p99 ratio (scraped / quiet): {scraped / quiet:.2f}  (bar: <= 2)")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        for url in db_urls.values():
            asyncio.run(drop_database(url))
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False, timeout=120)
        shutil.rmtree(workdir, ignore_errors=True)


def _rounds(runs: list[dict[str, float]]) -> str:
    return ", ".join(f"p99 {r['p99_ms']:.1f} ms at {r['rps']:.0f} req/s" for r in runs)


def report(
    args: argparse.Namespace,
    scrape: dict[int, float],
    gauges: dict[int, float],
    full: dict[int, float],
) -> None:
    small, large = sorted(scrape)
    print(
        f"metrics scrape: {args.scrapes} sequential scrapes of each replica's operator listener,"
        " alternating; each database also holds as many deleted domains"
    )
    for name, found in (("scrape (HTTP, medians)", scrape), ("domain gauges' queries", gauges)):
        print(
            f"  {name:24s} {small} domains {found[small] * 1000:7.3f} ms,"
            f" {large:,} domains {found[large] * 1000:7.3f} ms:"
            f" ratio {found[large] / found[small]:.2f}  (~1)"
        )
    print(
        f"  for comparison, the full count a scrape ran before: {full[small] * 1000:.3f} ms"
        f" -> {full[large] * 1000:.3f} ms (ratio {full[large] / full[small]:.1f})"
    )


if __name__ == "__main__":
    main()
