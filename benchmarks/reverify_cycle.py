"""Benchmark: one re-verification cycle over N domains, beside the floor SES and DNS allow.

Seeds N domains (default 10,000) into a scratch verifier database, places their records in a
DoH sandbox (Unbound behind dnsdist), creates their SES identities in a moto server, then runs
ONE cycle in a child process per size (N/10, then N) so each child's peak RSS is the
verifier's alone. Each child first measures the resolver's throughput through the very client
the cycle uses (a burst of lookups), then runs the cycle, then times the DNS part alone (every
domain's DNS probe and the registration watch's NS lookup, nothing else) while counting its
lookups. Every zone is due for the watch, as in the first cycle after its domains were added.
Every domain's SPF authorises the senders through a nested include, as many customers' do, so
SPF evaluation costs a lookup of its own. The floor is

    max(3 * ceil(N / 100) / ses_rate, L / resolver_qps)

SES's one-call-a-second budget (three batched calls per 100 identities: DKIM, identity
verification, MAIL FROM; never one per domain) against the L lookups the DNS part makes.
With `--accounts K` the domains are spread over K SES accounts (moto serves each in its own
state, reached with its own keys), each with its own budget of one call a second, and N in
the SES floor is the fullest account's share: the accounts' cycles run side by side. An SES
quota stand-in in front of moto throttles any account-region past its rate, as SES does.
Run:

    .venv/bin/python benchmarks/reverify_cycle.py [--domains 10000] [--ses-rate 1] [--accounts 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import dns.name

from domainflow.contracts import DkimRecord, DnsRecords, MxRecord, NamedRecord
from domainflow.kit.collector import settle_collector
from domainflow.kit.database import Database, drop_database, ensure_database
from domainflow.kit.runtime import kit_migrations
from domainflow.kit.settings import DEFAULT_POSTGRES, LogSettings
from domainflow.sandbox.dns import DnsSandbox, rdata_text, record_sets
from domainflow.sandbox.moto import DkimStatusProxy, SesQuotaProxy, account_keys
from domainflow.verifier.adapters.doh import DohResolver
from domainflow.verifier.dns_probe import AuthorityOptions, probe_dns
from domainflow.verifier.lookups import LookupResult
from domainflow.verifier.main import Verifier, migrations, open_verifier
from domainflow.verifier.settings import (
    DnsSettings,
    ReverifySettings,
    VerifierDatabaseSettings,
    VerifierSesSettings,
    VerifierSettings,
)

REGION = "us-east-1"
POSTGRES = os.environ.get("DOMAINFLOW_TEST_POSTGRES_URL", DEFAULT_POSTGRES)


def records_for(domain: str) -> DnsRecords:
    return DnsRecords(
        mx=[MxRecord(name=domain, priority=10, target="mail.sendmux.ai")],
        spf=NamedRecord(name=domain, value="v=spf1 include:amazonses.com include:sendmux.ai ~all"),
        dmarc=NamedRecord(name=f"_dmarc.{domain}", value="v=DMARC1; p=quarantine"),
        dkim=[
            DkimRecord(name=f"t{i}._domainkey.{domain}", value=f"t{i}.dkim.amazonses.com")
            for i in range(1, 4)
        ],
        verification=NamedRecord(name=f"_sendmux.{domain}", value="sendmux-verify=team_bench"),
    )


def domain_names(count: int, run: str) -> list[str]:
    return [f"mail.d{i:06d}-{run}.com" for i in range(count)]


def placed_sets(domain: str) -> dict[tuple[str, str], list[str]]:
    """What a customer places: our records, with the SPF reaching our includes one level down."""
    sets = record_sets(records_for(domain))
    ours = sets[(domain, "TXT")]
    sets[(domain, "TXT")] = [f"v=spf1 include:_spf.{domain} ~all"]
    sets[(f"_spf.{domain}", "TXT")] = ours
    return sets


def write_zone_store(workdir: Path, domains: list[str]) -> None:
    """All records in the sandbox's store before it starts: Unbound loads them in one batch
    (`unbound-control local_datas` reading every line from stdin), not one call per domain."""
    store: dict[str, Any] = {}
    for domain in domains:
        for (name, rdtype), values in placed_sets(domain).items():
            absolute = dns.name.from_text(name, origin=dns.name.root).to_text()
            entry = store.setdefault(absolute.lower(), {"name": absolute, "rrsets": {}})
            entry["rrsets"][rdtype] = {
                "ttl": 300,
                "rdata": [rdata_text(rdtype, value) for value in values],
            }
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "records.json").write_text(json.dumps(store))


def account_ids(accounts: int) -> dict[str, str]:
    """The benchmark's SES accounts by name, with their moto account ids (none: one account,
    the default, as before accounts existed)."""
    if accounts <= 1:
        return {}
    return {f"acct{k:02d}": f"{100000000000 + k}" for k in range(accounts)}


def account_of(index: int, names: list[str]) -> str | None:
    return names[index % len(names)] if names else None


def create_identities(domains: list[str], accounts: dict[str, str]) -> None:
    """Straight into the in-process moto server's backends (each domain in its account's):
    10k HTTP calls would take a minute.

    Moto answers DKIM `Success` (and verification `Success`) for every identity it holds, as
    SES does once it sees the three CNAMEs.
    """
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    names = list(accounts)
    for i, domain in enumerate(domains):
        name = account_of(i, names)
        account_id = DEFAULT_ACCOUNT_ID if name is None else accounts[name]
        ses_backends[account_id][REGION].verify_domain(domain)


async def seed_database(url: str, domains: list[str], names: list[str]) -> None:
    db = await Database.prepare(url, [*kit_migrations(), *migrations()], size=2)
    try:
        async with db.pool.acquire() as conn:
            await conn.executemany(
                """
                INSERT INTO schedule (domain_id, team_id, domain, region, status, records,
                                      next_check_at, correlation_id, status_event_at,
                                      ses_account)
                VALUES ($1, 'team_bench', $2, $3, 'verified', $4,
                        now() - interval '1 second', 'bench', now(), $5)
                """,
                [
                    (
                        f"mdom_{i:08d}",
                        domain,
                        REGION,
                        records_for(domain).model_dump(mode="json"),
                        account_of(i, names),
                    )
                    for i, domain in enumerate(domains)
                ],
            )
    finally:
        await db.close()


# -- the child: one cycle, nothing else in the process ------------------------------------


async def measure_qps(verifier: Verifier, domains: list[str], lookups: int, fan_out: int) -> float:
    """Lookups per second through the cycle's own client, at the cycle's own concurrency."""
    names = iter([f"_sendmux.{domains[i % len(domains)]}" for i in range(lookups)])
    resolver = verifier.resolver
    await resolver.lookup(f"_sendmux.{domains[0]}", "TXT")  # connections warm, as in the cycle

    async def worker() -> None:
        for name in names:
            await resolver.lookup(name, "TXT")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(fan_out)))
    return lookups / (time.perf_counter() - started)


class CountingResolver:
    """The cycle's resolver, counting the lookups made through it."""

    def __init__(self, resolver: DohResolver) -> None:
        self._resolver = resolver
        self.lookups = 0

    async def lookup(self, name: str, rdtype: str) -> LookupResult:
        self.lookups += 1
        return await self._resolver.lookup(name, rdtype)


async def dns_part(
    verifier: Verifier, domains: list[str], settings: VerifierSettings
) -> tuple[float, int]:
    """Every domain's DNS probe alone, as the cycle runs it: seconds taken, lookups made."""
    counting = CountingResolver(verifier.resolver)
    authority = AuthorityOptions(settings.dns.authority_port, settings.dns.authority_timeout)
    slots = asyncio.Semaphore(settings.dns.concurrency)

    async def one(domain: str) -> None:
        async with slots:
            await probe_dns(counting, records_for(domain), authority)
            if settings.registration.watch:  # the watch's look at the zone's nameservers
                await counting.lookup(domain.partition(".")[2], "NS")

    started = time.perf_counter()
    await asyncio.gather(*(one(domain) for domain in domains))
    return time.perf_counter() - started, counting.lookups


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> float:
    """Restart the peak-RSS mark (Linux clear_refs 5) so it shows the cycle's own peak; the
    current RSS. (`ru_maxrss` would not do: Linux carries it across fork+exec from the parent,
    which holds every record of the seeding.)"""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mib("VmRSS")


def peak_rss() -> float:
    return _status_mib("VmHWM")


async def child(url: str, domains: list[str], args: argparse.Namespace) -> dict[str, Any]:
    settings = VerifierSettings(
        database=VerifierDatabaseSettings(url=url),
        dns=DnsSettings(
            doh_url=args.doh_url, doh_ca_file=args.ca_file, concurrency=args.dns_concurrency
        ),
        ses=VerifierSesSettings(rate=args.ses_rate, accounts=args.ses_accounts),
        reverify=ReverifySettings(batch=args.batch),
        log=LogSettings(level="WARNING"),
    )
    db = await Database.connect(url, size=10)
    try:
        async with open_verifier(db, settings) as verifier:
            settle_collector(settings.collector)  # as the service's runtime does once started
            qps = await measure_qps(
                verifier, domains, min(4 * len(domains), 8000), 4 * args.dns_concurrency
            )
            await asyncio.sleep(1.0 / args.ses_rate)  # the limiter starts the cycle fresh
            rss_before = reset_peak_rss()
            report = await verifier.cycle.run_once()
            peak = peak_rss()
            dns_seconds, lookups = await dns_part(verifier, domains, settings)
    finally:
        await db.close()
    return {
        "domains": len(domains),
        "checked": report.checked,
        "outcomes": report.outcomes,
        "cycle_seconds": report.seconds,
        "resolver_qps": qps,
        "dns_seconds": dns_seconds,
        "lookups": lookups,
        "rss_before_cycle_mib": rss_before,
        "peak_rss_mib": peak,
    }


def run_size(
    domains: list[str],
    args: argparse.Namespace,
    env: dict[str, str],
    ses: DkimStatusProxy,
    quota: SesQuotaProxy,
) -> dict[str, Any]:
    url = f"{POSTGRES}/dfbench_reverify_{len(domains)}_{uuid.uuid4().hex[:6]}"
    asyncio.run(ensure_database(url))
    try:
        names = [a["name"] for a in args.ses_accounts]
        asyncio.run(seed_database(url, domains, names))
        quota.reset()
        payload = json.dumps({**vars(args), "url": url, "names": domains})
        done = subprocess.run(
            [sys.executable, __file__, "--child"],
            input=payload,
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"cycle child failed:\n{done.stderr[-4000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        # What SES saw on the wire from the child (the cycle is its only SES caller).
        result["ses_calls"] = len(ses.attribute_calls)
        ses.attribute_calls.clear()
        result["ses_throttled"] = len(quota.calls("request", accepted=False))
        per_key: dict[str, int] = {}
        for call in quota.calls("request", accepted=True):
            per_key[call.key_id] = per_key.get(call.key_id, 0) + 1
        result["ses_calls_fullest_account"] = max(per_key.values(), default=0)
        result["accounts"] = max(1, len(names))
        result["fullest_account_domains"] = math.ceil(len(domains) / max(1, len(names)))
        return result
    finally:
        asyncio.run(drop_database(url))


#: SES calls per chunk of up to 100 identities: GetIdentityDkimAttributes,
#: GetIdentityVerificationAttributes, GetIdentityMailFromDomainAttributes.
SES_CALLS_PER_CHUNK = 3


def report(result: dict[str, Any], ses_rate: float) -> None:
    n = result["domains"]
    fullest = result["fullest_account_domains"]
    ses_floor = SES_CALLS_PER_CHUNK * math.ceil(fullest / 100) / ses_rate
    dns_floor = result["lookups"] / result["resolver_qps"]
    floor = max(ses_floor, dns_floor)
    print(
        f"N={n:>6}  checked={result['checked']:>6}  cycle={result['cycle_seconds']:7.1f} s  "
        f"floor={floor:6.1f} s (SES {ses_floor:.1f} s, DNS {dns_floor:.1f} s at "
        f"{result['resolver_qps']:.0f} q/s)  ratio={result['cycle_seconds'] / floor:.2f}  "
        f"peak RSS={result['peak_rss_mib']:.0f} MiB "
        f"(before the cycle {result['rss_before_cycle_mib']:.0f})  outcomes={result['outcomes']}"
    )
    batched = SES_CALLS_PER_CHUNK * math.ceil(fullest / 100) * result["accounts"]
    print(
        f"         SES calls on the wire: {result['ses_calls']} (batched: {batched}, "
        f"{SES_CALLS_PER_CHUNK} per 100 domains; one per domain would be {n}) in "
        f"{result['accounts']} account(s) of {fullest} domains at most "
        f"({result['ses_calls_fullest_account']} calls in the fullest); throttled by the "
        f"quota stand-in: {result['ses_throttled']}"
    )
    print(
        f"         DNS part alone: {result['dns_seconds']:.1f} s for {result['lookups']} lookups "
        f"({result['lookups'] / n:.1f} a domain) beside its floor {dns_floor:.1f} s "
        f"(ratio {result['dns_seconds'] / dns_floor:.2f}) and the cycle floor {floor:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=10_000)
    parser.add_argument("--ses-rate", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=500, help="claim size")
    parser.add_argument("--dns-concurrency", type=int, default=64)
    parser.add_argument("--accounts", type=int, default=1, help="SES accounts to spread over")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        job = json.loads(sys.stdin.read())
        for key in ("doh_url", "ca_file", "ses_rate", "batch", "dns_concurrency", "ses_accounts"):
            setattr(args, key, job[key])
        print(json.dumps(asyncio.run(child(job["url"], job["names"], args))))
        return

    from moto.server import ThreadedMotoServer

    from domainflow.sandbox.ports import listening_port

    run = uuid.uuid4().hex[:6]
    domains = domain_names(args.domains, run)
    moto_port = listening_port()
    # werkzeug logs every request at INFO; 300 SES calls a run would bury the result.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    # A hop in front of moto that counts every identity-attributes call (it rewrites nothing),
    # behind SES's quotas: one request a second per account and region.
    ses = DkimStatusProxy(f"http://127.0.0.1:{moto_port}")
    ses.start()
    quota = SesQuotaProxy(ses.url, rate=args.ses_rate, send_rate=args.ses_rate)
    quota.start()
    accounts = account_ids(args.accounts)
    args.ses_accounts = []
    for name, account_id in accounts.items():
        key, secret = account_keys(f"http://127.0.0.1:{moto_port}", account_id)
        args.ses_accounts.append({"name": name, "access_key_id": key, "secret_access_key": secret})
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": quota.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    os.environ.update(env)
    with tempfile.TemporaryDirectory(prefix="dfbench-dns-") as workdir:
        started = time.perf_counter()
        write_zone_store(Path(workdir), domains)
        sandbox = DnsSandbox(workdir)
        sandbox.start()
        try:
            create_identities(domains, accounts)
            print(
                f"seeded {len(domains)} domains (DNS sandbox + moto SES) in "
                f"{time.perf_counter() - started:.1f} s"
            )
            args.doh_url, args.ca_file = sandbox.doh_url, str(sandbox.ca_file)
            small = run_size(domains[: max(1, len(domains) // 10)], args, env, ses, quota)
            report(small, args.ses_rate)
            large = run_size(domains, args, env, ses, quota)
            report(large, args.ses_rate)
            growth = large["peak_rss_mib"] / small["peak_rss_mib"]
            print(
                f"peak RSS N/10 -> N: {small['peak_rss_mib']:.0f} -> "
                f"{large['peak_rss_mib']:.0f} MiB (x{growth:.2f} for 10x the domains)"
            )
        finally:
            sandbox.stop()
            quota.stop()
            ses.stop()
            moto.stop()


if __name__ == "__main__":
    main()
