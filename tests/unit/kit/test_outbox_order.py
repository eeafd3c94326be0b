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
