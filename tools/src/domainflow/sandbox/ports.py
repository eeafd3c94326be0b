"""Ports for servers that tests and the local stack start as other processes.

A port found free by binding to port 0 comes from the kernel's ephemeral range, the same
range every outgoing connection draws its local port from. Between choosing such a port and
a child process binding it (seconds, while the child imports), any connection to PostgreSQL,
RabbitMQ or moto may take it, and the child dies at start (uvicorn: exit 3). Ports below that
range are never handed to outgoing connections, so one that is free now stays free until the
server binds it, unless some other process binds it on purpose.

Processes that choose ports at the same time (parallel test workers) each take their own
slice of that range (`DOMAINFLOW_PORT_SLICE=k/n`), so none hands out a port another has
handed out and not yet bound.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000  # below this live well-known and registered services' ports
_handed_out: set[int] = set()


class NoFreePortError(RuntimeError):
    pass


def ephemeral_range(source: Path = _RANGE_FILE) -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux's default if unknown)."""
    try:
        low, high = (int(part) for part in source.read_text().split())
    except (OSError, ValueError):
        return 32_768, 60_999
    return low, high


def candidate_ports(ephemeral: tuple[int, int]) -> range:
    """The ports to choose from: below the ephemeral range, or above it if it starts low."""
    low, high = ephemeral
    if low - _LOWEST >= 1_000:
        return range(_LOWEST, low)
    return range(high + 1, 65_536)


def port_slice(pool: range, spec: str | None) -> range:
    """Slice `k/n` (0 <= k < n) of `pool`; all of it when `spec` is unset or empty."""
    if not spec:
        return pool
    try:
        index, count = (int(part) for part in spec.split("/"))
    except ValueError as exc:
        raise ValueError(f"DOMAINFLOW_PORT_SLICE must be k/n, not {spec!r}") from exc
    if not 0 <= index < count:
        raise ValueError(f"DOMAINFLOW_PORT_SLICE must be k/n with 0 <= k < n, not {spec!r}")
    size = len(pool) // count
    return range(pool.start + index * size, pool.start + (index + 1) * size)


def _bindable(port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def listening_port(*, udp: bool = False, span: int = 1, spacing: int = 1) -> int:
    """The first of `span` loopback ports `spacing` apart, each free for TCP (and UDP when asked)
    and none handed out by this process before (api replicas listen on port, port + 1, ...; a
    RabbitMQ node on port and its management API on port + 10000)."""
    pool = port_slice(candidate_ports(ephemeral_range()), os.environ.get("DOMAINFLOW_PORT_SLICE"))
    reach = (span - 1) * spacing
    if reach >= len(pool):
        raise NoFreePortError(f"{span} ports {spacing} apart do not fit in {pool}")
    for _ in range(200):
        first = random.randrange(pool.start, pool.stop - reach)
        ports = range(first, first + reach + 1, spacing)
        if any(port in _handed_out for port in ports):
            continue
        if not all(_bindable(port, socket.SOCK_STREAM) for port in ports):
            continue
        if udp and not all(_bindable(port, socket.SOCK_DGRAM) for port in ports):
            continue
        _handed_out.update(ports)
        return first
    raise NoFreePortError(f"no {span} free loopback port(s) in {pool.start}-{pool.stop - 1}")
