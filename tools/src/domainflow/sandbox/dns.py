"""A real DNS-over-HTTPS stack on loopback: Unbound serving test zones, dnsdist in front over TLS.

Unbound answers from local data only (`local-zone: "." static`: an unknown name is NXDOMAIN at
once and nothing leaves the machine). dnsdist terminates DoH because its h2o listener speaks
HTTP/1.1 as well as HTTP/2 (aiohttp speaks only HTTP/1.1, Unbound's own DoH only HTTP/2), and it
health-checks Unbound every second so a stopped resolver turns into SERVFAIL, the "resolver
down" case. Records change at run time through `unbound-control local_datas`; a JSON store in
the workdir keeps them across a resolver restart and lets another process (the CLI) change them
on a running sandbox, which it finds through the state file (`DnsSandbox.attach`).

Every process the sandbox starts is tied to the *thread* that called `start()` (Linux
PR_SET_PDEATHSIG), so call it from a long-lived thread (the main thread, a pytest fixture),
not from a short-lived worker such as `asyncio.to_thread`.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from dns.rdtypes.ANY.TXT import TXT

from domainflow.contracts.events import DnsRecords
from domainflow.sandbox.ports import listening_port

UNBOUND = os.environ.get("DOMAINFLOW_UNBOUND", "/usr/sbin/unbound")
UNBOUND_CONTROL = os.environ.get("DOMAINFLOW_UNBOUND_CONTROL", "/usr/sbin/unbound-control")
DNSDIST = os.environ.get("DOMAINFLOW_DNSDIST", "/usr/bin/dnsdist")
OPENSSL = os.environ.get("DOMAINFLOW_OPENSSL", "openssl")

STATE_FILE_NAME = "dns-sandbox.json"
STATE_VERSION = 1
DOH_PATH = "/dns-query"
#: The name dnsdist's health check and our readiness probes ask for; `.invalid` never exists.
PROBE_NAME = "sandbox-health.invalid."
READY_TIMEOUT = 15.0

#: A TXT value is one text (quoted and split into 255-byte strings for you), or an explicit
#: sequence of character-strings, or a presentation-form text starting with `"`
#: (e.g. `'"v=spf1 include:a" " include:b ~all"'`), which is placed as written.
RecordValue = str | Sequence[str]


class SandboxError(RuntimeError):
    """The sandbox could not start, or Unbound refused a change."""


@dataclass(frozen=True)
class SandboxPorts:
    unbound: int  # Unbound's plain DNS (UDP and TCP), dnsdist's only backend
    control: int  # unbound-control, plain TCP (control-use-cert: no)
    dns: int  # dnsdist's plain DNS listener: readiness probes, dig
    doh: int  # dnsdist's DoH listener (HTTPS)
    authority: int = 0  # the authoritative server's plain DNS (UDP and TCP)
    authority_control: int = 0  # its unbound-control


#: The resolver's records ("what caches show") and the authority's ("what the zone serves").
Side = str
RESOLVER: Side = "resolver"
AUTHORITY: Side = "authority"
#: The host name every delegated test zone names as its nameserver; it resolves to loopback,
#: and the verifier asks it on the sandbox's authority port (`DOMAINFLOW_DNS_AUTHORITY_PORT`).
AUTHORITY_HOST = "ns1.sandbox-authority.test."


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: the kernel SIGKILLs it when the thread that
    # started it dies, so a crashed or SIGKILLed test run leaves no resolver behind.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # 1 == PR_SET_PDEATHSIG


def _absolute(name: str) -> dns.name.Name:
    return dns.name.from_text(name, origin=dns.name.root)


def _name_key(name: str) -> str:
    return _absolute(name).to_text().lower()


def rdata_text(rdtype: str, value: RecordValue) -> str:
    """One value in the presentation form Unbound reads, checked by dnspython first."""
    kind = dns.rdatatype.from_text(rdtype)
    if kind == dns.rdatatype.TXT and not (isinstance(value, str) and value.startswith('"')):
        texts = [value] if isinstance(value, str) else list(value)
        strings: list[bytes] = []
        for text in texts:
            raw = text.encode()
            # A character-string holds at most 255 bytes; longer texts become several.
            strings.extend(raw[i : i + 255] for i in range(0, len(raw), 255) or [0])
        return TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings).to_text()
    if not isinstance(value, str):
        raise TypeError(f"a {rdtype} value is one string, got {value!r}")
    rdata = dns.rdata.from_text(
        dns.rdataclass.IN, kind, value, origin=dns.name.root, relativize=False
    )
    return rdata.to_text()


def record_sets(
    records: DnsRecords, *, zone_doubling: bool = False
) -> dict[tuple[str, str], list[str]]:
    """Every (name, type) -> values that `records` asks the customer to place.

    With `zone_doubling`, the ownership TXT sits where a provider that appends the zone puts it:
    `_sendmux.<domain>.<domain>`.
    """
    sets: dict[tuple[str, str], list[str]] = {}

    def add(name: str, rdtype: str, value: str) -> None:
        sets.setdefault((name, rdtype), []).append(value)

    for mx in records.mx:
        add(mx.name, "MX", f"{mx.priority} {mx.target}")
    add(records.spf.name, "TXT", records.spf.value)
    add(records.dmarc.name, "TXT", records.dmarc.value)
    for dkim in records.dkim:
        add(dkim.name, "CNAME", dkim.value)
    add(ownership_name(records, zone_doubling=zone_doubling), "TXT", records.verification.value)
    if records.mail_from is not None:
        add(
            records.mail_from.mx.name,
            "MX",
            f"{records.mail_from.mx.priority} {records.mail_from.mx.target}",
        )
        add(records.mail_from.spf.name, "TXT", records.mail_from.spf.value)
    return sets


def ownership_name(records: DnsRecords, *, zone_doubling: bool = False) -> str:
    """Where the ownership TXT goes; the domain is the SPF record's name (SPF sits on it)."""
    name = records.verification.name.rstrip(".")
    return f"{name}.{records.spf.name.rstrip('.')}" if zone_doubling else name


class DnsSandbox:
    """Unbound + dnsdist on loopback, everything under `workdir`; see the module docstring."""

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        unbound_port: int = 0,
        control_port: int = 0,
        dns_port: int = 0,
        doh_port: int = 0,
        die_with_parent: bool = True,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self._wanted = SandboxPorts(unbound_port, control_port, dns_port, doh_port, 0, 0)
        self._ports: SandboxPorts | None = None
        self._die_with_parent = die_with_parent
        self._owner = True
        self._unbound: subprocess.Popen[bytes] | None = None
        self._authority: subprocess.Popen[bytes] | None = None
        self._dnsdist: subprocess.Popen[bytes] | None = None
        self._frozen = False

    # -- where things are -------------------------------------------------------------------

    @property
    def ports(self) -> SandboxPorts:
        if self._ports is None:
            raise SandboxError("the sandbox is not started")
        return self._ports

    @property
    def doh_url(self) -> str:
        return f"https://127.0.0.1:{self.ports.doh}{DOH_PATH}"

    @property
    def dns_address(self) -> tuple[str, int]:
        """dnsdist's plain DNS listener (same answers as DoH), for dig and probes."""
        return ("127.0.0.1", self.ports.dns)

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.pem"

    @property
    def state_file(self) -> Path:
        return self.workdir / STATE_FILE_NAME

    @property
    def unbound_conf(self) -> Path:
        return self.workdir / "unbound.conf"

    @property
    def dnsdist_conf(self) -> Path:
        return self.workdir / "dnsdist.conf"

    @property
    def records_file(self) -> Path:
        return self.workdir / "records.json"

    @property
    def authority_conf(self) -> Path:
        return self.workdir / "authority.conf"

    @property
    def authority_records_file(self) -> Path:
        return self.workdir / "authority-records.json"

    @property
    def authority_address(self) -> tuple[str, int]:
        """The authoritative server every delegated zone names (`delegate`)."""
        return ("127.0.0.1", self.ports.authority)

    @property
    def authority_running(self) -> bool:
        if self._owner:
            return self._authority is not None and self._authority.poll() is None
        return bool(self._read_state().get("authority_running", False))

    @property
    def resolver_running(self) -> bool:
        if self._owner:
            return self._unbound is not None and self._unbound.poll() is None
        return bool(self._read_state().get("resolver_running", False))

    @property
    def frontend_running(self) -> bool:
        if self._owner:
            return self._dnsdist is not None and self._dnsdist.poll() is None
        return bool(self._read_state().get("frontend_running", False))

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        """Generate the CA and certificate (once per workdir), start Unbound, then dnsdist."""
        self._require_owner("start")
        if self._unbound is not None or self._dnsdist is not None:
            raise SandboxError("the sandbox is already started")
        for program in (UNBOUND, UNBOUND_CONTROL, DNSDIST):
            if shutil.which(program) is None:
                raise SandboxError(f"{program} is not installed")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._ports = self._pick_ports()
        self._ensure_certificates()
        self._write_configs()
        atexit.register(self.stop)
        try:
            self._start_unbound()
            self._start_authority()
            self._start_dnsdist()
            self._wait_backend(up=True)
        except BaseException:
            self.stop()
            raise
        self._write_state()
        return self

    def stop(self) -> None:
        """Stop both processes and remove the state file; safe to call twice."""
        if not self._owner:
            return
        atexit.unregister(self.stop)
        if self._dnsdist is not None and self._frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._dnsdist.pid, signal.SIGCONT)
            self._frozen = False
        self._end(self._dnsdist)
        self._end(self._unbound)
        self._end(self._authority)
        self._dnsdist = self._unbound = self._authority = None
        self.state_file.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @classmethod
    def attach(cls, state_file: str | os.PathLike[str]) -> DnsSandbox:
        """Reconnect to a sandbox another process started, to place and remove records.

        The attached object does not own the processes: it cannot start or stop them.
        """
        path = Path(state_file)
        if path.is_dir():
            path = path / STATE_FILE_NAME
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise SandboxError(f"no running DNS sandbox: {path} does not exist") from None
        if state.get("version") != STATE_VERSION:
            raise SandboxError(f"{path}: unknown state version {state.get('version')!r}")
        owner = int(state["owner_pid"])
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            raise SandboxError(f"{path}: the process that started it ({owner}) is gone") from None
        sandbox = cls(state["workdir"], die_with_parent=False)
        sandbox._owner = False
        sandbox._ports = SandboxPorts(**state["ports"])
        return sandbox

    def detach(self) -> None:
        """Forget an attached sandbox (it keeps running); the owner uses `stop()` instead."""
        if self._owner:
            raise SandboxError("detach() is for an attached sandbox; the owner calls stop()")
        self._ports = None

    # -- failure modes ----------------------------------------------------------------------

    def stop_resolver(self) -> None:
        """Stop Unbound only; returns once dnsdist answers SERVFAIL (the "resolver down" case)."""
        self._require_owner("stop_resolver")
        self._end(self._unbound)
        self._unbound = None
        self._write_state()
        if self.frontend_running and not self._frozen:
            self._wait_backend(up=False)

    def start_resolver(self) -> None:
        """Start Unbound again with every stored record; returns once dnsdist uses it again."""
        self._require_owner("start_resolver")
        if self.resolver_running:
            return
        self._start_unbound()
        self._write_state()
        if self.frontend_running and not self._frozen:
            self._wait_backend(up=True)

    def stop_frontend(self) -> None:
        """Stop dnsdist: the DoH port refuses connections."""
        self._require_owner("stop_frontend")
        if self._dnsdist is not None and self._frozen:
            os.kill(self._dnsdist.pid, signal.SIGCONT)
            self._frozen = False
        self._end(self._dnsdist)
        self._dnsdist = None
        self._write_state()

    def start_frontend(self) -> None:
        """Start dnsdist again on the same ports."""
        self._require_owner("start_frontend")
        if self.frontend_running:
            return
        self._start_dnsdist()
        self._write_state()
        if self.resolver_running:
            self._wait_backend(up=True)

    def stop_authority(self) -> None:
        """Stop the authoritative server: its port refuses (UDP: ICMP unreachable)."""
        self._require_owner("stop_authority")
        self._end(self._authority)
        self._authority = None
        self._write_state()

    def start_authority(self) -> None:
        """Start the authoritative server again with every record it held."""
        self._require_owner("start_authority")
        if not self.authority_running:
            self._start_authority()
            self._write_state()

    def freeze_frontend(self) -> None:
        """SIGSTOP dnsdist: the kernel accepts connections but nothing answers (timeouts)."""
        self._require_owner("freeze_frontend")
        if self._dnsdist is None:
            raise SandboxError("dnsdist is not running")
        os.kill(self._dnsdist.pid, signal.SIGSTOP)
        self._frozen = True

    def thaw_frontend(self) -> None:
        self._require_owner("thaw_frontend")
        if self._dnsdist is not None and self._frozen:
            os.kill(self._dnsdist.pid, signal.SIGCONT)
        self._frozen = False

    # -- records ----------------------------------------------------------------------------

    def set_records(
        self,
        name: str,
        rdtype: str,
        values: Sequence[RecordValue],
        ttl: int = 1,
        *,
        side: Side = RESOLVER,
    ) -> None:
        """Replace the `rdtype` set at `name` with `values` (no values: remove that set).

        `side` is where: the resolver (what caches show, the default) or the authority.
        """
        kind = dns.rdatatype.to_text(dns.rdatatype.from_text(rdtype))
        texts = [rdata_text(kind, value) for value in values]
        with self._records(side) as store:
            entry = store.setdefault(
                _name_key(name), {"name": _absolute(name).to_text(), "rrsets": {}}
            )
            if texts:
                entry["rrsets"][kind] = {"ttl": ttl, "rdata": texts}
            else:
                entry["rrsets"].pop(kind, None)
            self._sync(store, {_name_key(name)}, side)

    def remove_name(self, name: str) -> None:
        """Remove every record at `name` (the name then answers NXDOMAIN)."""
        self.remove_names([name])

    def remove_names(self, names: Iterable[str], *, side: Side = RESOLVER) -> None:
        keys = {_name_key(name) for name in names}
        with self._records(side) as store:
            for key in keys:
                store.pop(key, None)
            self._sync(store, keys, side)

    def delegate(self, zone: str, *, soa_minimum: int = 60) -> None:
        """Make `zone` served by the sandbox's authority, as a registrar's delegation would.

        The resolver learns `zone NS AUTHORITY_HOST` and that host's loopback address; the
        authority gets the zone's SOA (whose minimum bounds negative caching) and NS.
        """
        apex = _absolute(zone).to_text()
        soa = f"{AUTHORITY_HOST} hostmaster.{apex} 1 3600 600 86400 {soa_minimum}"
        # The resolver gets no SOA: a local zone per test zone would leave Unbound zones
        # behind that outlive the records (and answer SERVFAIL); its negative answers carry
        # no TTL, so the verifier reads the bound from the authority's SOA, as it must for
        # resolvers that strip it.
        self.set_records(AUTHORITY_HOST, "A", ["127.0.0.1"], ttl=3600)
        self.set_records(apex, "NS", [AUTHORITY_HOST], ttl=3600)
        self.set_records(apex, "SOA", [soa], ttl=3600, side=AUTHORITY)
        self.set_records(apex, "NS", [AUTHORITY_HOST], ttl=3600, side=AUTHORITY)

    def place(
        self,
        records: DnsRecords,
        zone_doubling: bool = False,
        ttl: int = 1,
        *,
        side: Side = RESOLVER,
    ) -> None:
        """Place exactly the records of `records` (replacing those sets), in one change.

        The ownership TXT goes to the right name, or with `zone_doubling` to
        `_sendmux.<domain>.<domain>`; the other of the two names loses its TXT.
        """
        sets = record_sets(records, zone_doubling=zone_doubling)
        other = ownership_name(records, zone_doubling=not zone_doubling)
        with self._records(side) as store:
            touched = {_name_key(other)}
            if _name_key(other) in store:
                store[_name_key(other)]["rrsets"].pop("TXT", None)
            for (name, rdtype), values in sets.items():
                entry = store.setdefault(
                    _name_key(name), {"name": _absolute(name).to_text(), "rrsets": {}}
                )
                entry["rrsets"][rdtype] = {
                    "ttl": ttl,
                    "rdata": [rdata_text(rdtype, value) for value in values],
                }
                touched.add(_name_key(name))
            self._sync(store, touched, side)

    def remove(self, records: DnsRecords) -> None:
        """Remove every name `records` uses (both places the ownership TXT may sit)."""
        names = {name for name, _ in record_sets(records)}
        names |= {name for name, _ in record_sets(records, zone_doubling=True)}
        self.remove_names(names)

    def remove_domain(self, domain: str, *, side: Side | None = None) -> None:
        """Remove every name at or below `domain` (from both sides unless `side` says one)."""
        key = _name_key(domain)
        for where in (RESOLVER, AUTHORITY) if side is None else (side,):
            with self._records(where) as store:
                doomed = {name for name in store if name == key or name.endswith("." + key)}
                for name in doomed:
                    del store[name]
                self._sync(store, doomed, where)

    def records(self, *, side: Side = RESOLVER) -> dict[str, dict[str, list[str]]]:
        """What the sandbox serves: name -> type -> values in presentation form."""
        with self._records(side) as store:
            return {
                entry["name"]: {
                    kind: list(rrset["rdata"]) for kind, rrset in entry["rrsets"].items()
                }
                for entry in store.values()
                if entry["rrsets"]
            }

    # -- internals --------------------------------------------------------------------------

    def _require_owner(self, action: str) -> None:
        if not self._owner:
            raise SandboxError(f"{action}() needs the process that started the sandbox")

    def _pick_ports(self) -> SandboxPorts:
        chosen: list[int] = []
        for wanted in asdict(self._wanted).values():
            chosen.append(int(wanted) or listening_port(udp=True))
        return SandboxPorts(*chosen)

    def _ensure_certificates(self) -> None:
        ca_key, cert, key = (
            self.workdir / "ca.key",
            self.workdir / "server.pem",
            self.workdir / "server.key",
        )
        if self.ca_file.exists() and cert.exists() and key.exists():
            return
        ext = self.workdir / "server.ext"
        ext.write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "subjectKeyIdentifier=hash\n"
            # Python 3.13's default context checks X.509 strictly: the leaf needs an AKI.
            "authorityKeyIdentifier=keyid,issuer\n"
        )
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        csr = self.workdir / "server.csr"
        self._openssl(
            "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(self.ca_file), "-days", "3650",
            "-subj", "/CN=domainflow DNS sandbox CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        self._openssl("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
        self._openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca_file), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(cert), "-days", "825", "-extfile", str(ext),
        )  # fmt: skip

    def _openssl(self, *args: str) -> None:
        done = subprocess.run(
            [OPENSSL, *args], capture_output=True, text=True, timeout=30, check=False
        )
        if done.returncode != 0:
            raise SandboxError(f"openssl {args[0]} failed: {done.stderr.strip()}")

    def _write_configs(self) -> None:
        ports = self.ports
        self.unbound_conf.write_text(
            f"""# written by domainflow's DNS sandbox (tools/src/domainflow/sandbox/dns.py)
server:
  interface: 127.0.0.1
  port: {ports.unbound}
  interface-automatic: no
  do-ip4: yes
  do-ip6: no
  do-udp: yes
  do-tcp: yes
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "{self.workdir}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 1
  num-threads: 1
  so-reuseport: no
  outgoing-range: 32
  num-queries-per-thread: 32
  # No validator: nothing is signed, and a missing trust anchor would only add noise.
  module-config: "iterator"
  # Local data only: every other name is NXDOMAIN at once; no root hints are ever asked.
  local-zone: "." static
  access-control: 127.0.0.0/8 allow
remote-control:
  control-enable: yes
  control-interface: 127.0.0.1
  control-port: {ports.control}
  control-use-cert: no
"""
        )
        self.authority_conf.write_text(
            self.unbound_conf.read_text()
            .replace(f"port: {ports.unbound}\n", f"port: {ports.authority}\n")
            .replace(
                f"control-port: {ports.control}\n", f"control-port: {ports.authority_control}\n"
            )
            .replace("# written by", "# the authoritative side; written by")
        )
        lua = json.dumps  # a JSON string literal is a valid Lua string literal for paths
        self.dnsdist_conf.write_text(
            f"""-- written by domainflow's DNS sandbox (tools/src/domainflow/sandbox/dns.py)
-- No security polling: it would ask the outside world's DNS.
setSecurityPollSuffix("")
setLocal("127.0.0.1:{ports.dns}")
addDOHLocal("127.0.0.1:{ports.doh}", {lua(str(self.workdir / "server.pem"))}, \
{lua(str(self.workdir / "server.key"))}, "{DOH_PATH}")
-- Checked every second, down after one miss: a stopped Unbound is SERVFAIL within ~1 s.
newServer({{address="127.0.0.1:{ports.unbound}", checkName="{PROBE_NAME}", checkInterval=1, \
checkTimeout=300, maxCheckFailures=1, rise=1}})
setServFailWhenNoServer(true)
setUDPTimeout(1)
-- No packet cache on purpose: tests change records between queries.
"""
        )

    def _spawn(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with (self.workdir / log_name).open("ab") as log:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,  # a Ctrl-C on the terminal is the owner's to handle
                preexec_fn=_die_with_parent if self._die_with_parent else None,
            )

    def _start_unbound(self) -> None:
        self._unbound = self._spawn(
            [UNBOUND, "-d", "-p", "-c", str(self.unbound_conf)], "unbound.log"
        )
        self._wait(
            lambda: self._rcode(self.ports.unbound) is not None, self._unbound, "unbound.log"
        )
        with self._records(RESOLVER) as store:
            self._sync(store, set(store), RESOLVER)

    def _start_authority(self) -> None:
        # A second Unbound serving local data only: its answers carry the AA flag, as a
        # zone's own nameserver's do, and nothing it holds is cached anywhere.
        self._authority = self._spawn(
            [UNBOUND, "-d", "-p", "-c", str(self.authority_conf)], "authority.log"
        )
        self._wait(
            lambda: self._rcode(self.ports.authority) is not None, self._authority, "authority.log"
        )
        with self._records(AUTHORITY) as store:
            self._sync(store, set(store), AUTHORITY)

    def _start_dnsdist(self) -> None:
        self._dnsdist = self._spawn(
            [DNSDIST, "--supervised", "--disable-syslog", "-C", str(self.dnsdist_conf)],
            "dnsdist.log",
        )
        self._wait(lambda: self._rcode(self.ports.dns) is not None, self._dnsdist, "dnsdist.log")
        self._wait(self._doh_port_open, self._dnsdist, "dnsdist.log")

    def _wait_backend(self, *, up: bool) -> None:
        """Until dnsdist's view of Unbound matches `up` (SERVFAIL means no backend)."""

        def settled() -> bool:
            rcode = self._rcode(self.ports.dns)
            return rcode is not None and (rcode != dns.rcode.SERVFAIL) == up

        self._wait(settled, self._dnsdist, "dnsdist.log")

    def _wait(
        self, ready: Callable[[], bool], process: subprocess.Popen[bytes] | None, log_name: str
    ) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise SandboxError(
                    f"{log_name.removesuffix('.log')} exited: {self._tail(log_name)}"
                )
            if ready():
                return
            time.sleep(0.02)
        raise SandboxError(f"not ready after {READY_TIMEOUT:.0f} s: {self._tail(log_name)}")

    def _tail(self, log_name: str) -> str:
        try:
            return (self.workdir / log_name).read_text(errors="replace")[-2000:]
        except FileNotFoundError:
            return "(no log)"

    @staticmethod
    def _rcode(port: int) -> int | None:
        query = dns.message.make_query(PROBE_NAME, "A")
        try:
            return int(dns.query.udp(query, "127.0.0.1", port=port, timeout=0.25).rcode())
        except (dns.exception.DNSException, OSError):
            return None

    def _doh_port_open(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.ports.doh), timeout=0.25):
                return True
        except OSError:
            return False

    @staticmethod
    def _end(process: subprocess.Popen[bytes] | None) -> None:
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def _write_state(self) -> None:
        state = {
            "version": STATE_VERSION,
            "owner_pid": os.getpid(),
            "workdir": str(self.workdir),
            "doh_url": self.doh_url,
            "ca_file": str(self.ca_file),
            "ports": asdict(self.ports),
            "unbound_conf": str(self.unbound_conf),
            "unbound_control": [UNBOUND_CONTROL, "-c", str(self.unbound_conf)],
            "records_file": str(self.records_file),
            "pids": {
                "unbound": self._unbound.pid if self._unbound else None,
                "dnsdist": self._dnsdist.pid if self._dnsdist else None,
            },
            "resolver_running": self.resolver_running,
            "authority_running": self.authority_running,
            "frontend_running": self.frontend_running,
        }
        scratch = self.state_file.with_suffix(".tmp")
        scratch.write_text(json.dumps(state, indent=2) + "\n")
        scratch.replace(self.state_file)

    def _read_state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}
        return state

    @contextlib.contextmanager
    def _records(self, side: Side = RESOLVER) -> Iterator[dict[str, Any]]:
        """A side's record store, locked across processes for the whole change and its sync."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.records_file if side == RESOLVER else self.authority_records_file
        with (self.workdir / "records.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                try:
                    store: dict[str, Any] = json.loads(path.read_text())
                except FileNotFoundError:
                    store = {}
                yield store
                for key in [key for key, entry in store.items() if not entry["rrsets"]]:
                    del store[key]
                scratch = path.with_suffix(".tmp")
                scratch.write_text(json.dumps(store, indent=1, sort_keys=True) + "\n")
                scratch.replace(path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _sync(self, store: Mapping[str, Any], names: set[str], side: Side = RESOLVER) -> None:
        """Make a side's Unbound serve exactly the store's data for `names` (while it runs)."""
        running = self.resolver_running if side == RESOLVER else self.authority_running
        if not names or not running:
            return  # a stopped Unbound gets everything from the store when it starts
        conf = self.unbound_conf if side == RESOLVER else self.authority_conf
        lines = [
            f"{entry['name']} {rrset['ttl']} IN {kind} {rdata}"
            for key in sorted(names)
            if (entry := store.get(key)) is not None
            for kind, rrset in sorted(entry["rrsets"].items())
            for rdata in rrset["rdata"]
        ]
        # local_data adds to a set; replacing a set means removing the name, then adding back.
        removed = "".join(f"{n}\n" for n in sorted(names))
        self._control("local_datas_remove", stdin=removed, conf=conf)
        if lines:
            self._control("local_datas", stdin="".join(f"{line}\n" for line in lines), conf=conf)

    def _control(self, *args: str, stdin: str | None = None, conf: Path | None = None) -> str:
        # A bound that grows with the lines handed over: a benchmark loads 100,000 domains'
        # records in one call, which takes Unbound more than the seconds a test's few do.
        lines = stdin.count("\n") if stdin else 0
        done = subprocess.run(
            [UNBOUND_CONTROL, "-c", str(conf or self.unbound_conf), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=15 + lines / 5000,
            check=False,
        )
        output = (done.stdout + done.stderr).strip()
        if done.returncode != 0 or "error" in output.lower():
            raise SandboxError(f"unbound-control {args[0]}: {output}")
        return output
