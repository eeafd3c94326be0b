"""Ports for child servers come from outside the range outgoing connections draw from."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domainflow.sandbox.ports import (
    NoFreePortError,
    candidate_ports,
    ephemeral_range,
    listening_port,
    port_slice,
)


@given(low=st.integers(1_024, 64_000), width=st.integers(0, 1_000))
def test_candidates_never_overlap_the_ephemeral_range(low: int, width: int) -> None:
    high = min(low + width, 65_535)
    pool = candidate_ports((low, high))
    assert len(pool) > 0 or high == 65_535
    assert not set(pool) & set(range(low, high + 1))
    assert pool.start >= 1_024
    assert pool.stop <= 65_536


def test_the_range_is_read_from_the_kernel_file(tmp_path: Path) -> None:
    source = tmp_path / "ip_local_port_range"
    source.write_text("40000\t50000\n")
    assert ephemeral_range(source) == (40_000, 50_000)
    assert ephemeral_range(tmp_path / "missing") == (32_768, 60_999)


def test_ports_handed_out_are_distinct_bindable_and_outside_the_ephemeral_range() -> None:
    low, high = ephemeral_range()
    ports = [listening_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert not [port for port in ports if low <= port <= high]
    with socket.socket() as server:
        server.bind(("127.0.0.1", ports[0]))  # free, as promised


def test_a_span_is_adjacent_and_free_for_udp_too() -> None:
    first = listening_port(udp=True, span=2)
    for port in (first, first + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            udp.bind(("127.0.0.1", port))
            tcp.bind(("127.0.0.1", port))
    assert listening_port(span=2) not in (first - 1, first, first + 1)


def test_a_port_held_by_another_server_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOMAINFLOW_PORT_SLICE", raising=False)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        taken = holder.getsockname()[1]
        only_taken = range(taken, taken + 1)
        monkeypatch.setattr("domainflow.sandbox.ports.candidate_ports", lambda _: only_taken)
        with pytest.raises(NoFreePortError):
            listening_port()


@given(start=st.integers(1_024, 30_000), size=st.integers(1, 30_000), count=st.integers(1, 8))
def test_slices_are_disjoint_and_inside_the_pool(start: int, size: int, count: int) -> None:
    pool = range(start, start + size)
    slices = [port_slice(pool, f"{k}/{count}") for k in range(count)]
    seen: set[int] = set()
    for part in slices:
        assert set(part) <= set(pool)
        assert not seen & set(part)
        seen |= set(part)
    assert port_slice(pool, None) == pool
    assert port_slice(pool, "") == pool


@pytest.mark.parametrize("spec", ["2/2", "-1/2", "1", "a/b", "1/0"])
def test_a_malformed_slice_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="DOMAINFLOW_PORT_SLICE"):
        port_slice(range(10_000, 20_000), spec)


def test_a_worker_hands_out_ports_of_its_own_slice_only(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = candidate_ports(ephemeral_range())
    for k in range(2):
        monkeypatch.setenv("DOMAINFLOW_PORT_SLICE", f"{k}/2")
        mine = port_slice(pool, f"{k}/2")
        for _ in range(20):
            assert listening_port() in mine
        # A node and its management API (port + 10000) both inside the slice.
        first = listening_port(span=2, spacing=10_000)
        assert first in mine
        assert first + 10_000 in mine
