"""Which relayed rows may leave the outbox when the broker refused some of a batch."""

from __future__ import annotations

import json
import uuid

from hypothesis import given
from hypothesis import strategies as st

from domainflow.kit.outbox import _Row, confirmed_in_order


def _row(row_id: int, domain: str | None) -> _Row:
    body = json.dumps({"domain_id": domain} if domain else {"type": "x"}).encode()
    return _Row(row_id, uuid.uuid4(), "domain.status_changed", "req", body)


def test_a_refused_row_holds_back_its_domains_later_rows_only() -> None:
    rows = [_row(1, "a"), _row(2, "b"), _row(3, "a"), _row(4, "b"), _row(5, None)]
    assert confirmed_in_order(rows, [False, True, True, True, True]) == [2, 4, 5]
    assert confirmed_in_order(rows, [True, True, True, False, False]) == [1, 2, 3]


@given(st.lists(st.tuples(st.sampled_from("abc"), st.booleans()), max_size=40))
def test_no_row_leaves_before_an_earlier_refused_row_of_its_domain(
    batch: list[tuple[str, bool]],
) -> None:
    rows = [_row(i, domain) for i, (domain, _) in enumerate(batch)]
    done = set(confirmed_in_order(rows, [ok for _, ok in batch]))
    for i, (domain, ok) in enumerate(batch):
        refused_before = any(d == domain and not o for d, o in batch[:i])
        assert (i in done) == (ok and not refused_before)


def test_the_relay_reads_a_bodys_head_as_the_whole_json_would_say_it() -> None:
    body = {
        "event_id": "e1",
        "occurred_at": "2026-12-01T00:00:00Z",
        "version": 2,
        "domain_id": "mdom_1",
        "snapshot": {"records": [{"nested": [1, {"deep": None}]}]},
    }
    head = _Row(1, uuid.uuid4(), "domain.status_changed", "req", json.dumps(body).encode())
    assert head.fields == {k: body[k] for k in ("event_id", "occurred_at", "version", "domain_id")}
    # A body missing them stands for what a reader assumes; one that is no object, for none.
    bare = _Row(2, uuid.uuid4(), "x", "req", b'{"type": "x"}').fields
    assert bare == {"event_id": "", "occurred_at": "", "version": 1, "domain_id": None}
    for unreadable in (b"[1, 2]", b"not json", b"\xff\xfe", b'{"domain_id": '):
        assert _Row(3, uuid.uuid4(), "x", "req", unreadable).fields == {}


@given(st.recursive(st.none() | st.integers() | st.text(), st.lists, max_leaves=10))
def test_a_domain_id_of_any_json_type_reads_as_the_json_holds_it(value: object) -> None:
    row = _Row(1, uuid.uuid4(), "x", "req", json.dumps({"domain_id": value}).encode())
    assert row.fields["domain_id"] == value
