"""Text PostgreSQL cannot store is refused at the edge with a reason, never passed on."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domainflow.api.http.problems import ApiError
from domainflow.api.http.text import (
    json_depth_exceeds,
    refuse_unstorable,
    refuse_unstorable_in_url,
)


@pytest.mark.parametrize(
    "value",
    ["a\x00b", {"k\x00": 1}, {"k": ["x", {"y": "\ud800"}]}, "lone \udc00"],
)
def test_nul_and_lone_surrogates_are_refused_with_their_field(value: object) -> None:
    with pytest.raises(ApiError) as refused:
        refuse_unstorable("metadata", value)
    assert (refused.value.status, refused.value.reason) == (400, "invalid_characters")
    assert refused.value.param == "metadata"


@pytest.mark.parametrize("value", ["mail.acme.com", {"ünïcode": ["😀", 1, None]}, None, 3])
def test_storable_text_passes(value: object) -> None:
    refuse_unstorable("metadata", value)


def test_an_id_with_a_nul_names_nothing_and_a_query_value_is_refused() -> None:
    with pytest.raises(ApiError) as missing:
        refuse_unstorable_in_url({"public_id": "mdom\x00"}, {})
    assert missing.value.status == 404
    with pytest.raises(ApiError) as refused:
        refuse_unstorable_in_url({"public_id": "mdom_1"}, {"domain_id": ["x\x00"]})
    assert (refused.value.status, refused.value.param) == (400, "domain_id")


# --- nesting ------------------------------------------------------------------------------


def test_nesting_is_counted_outside_strings_only() -> None:
    assert not json_depth_exceeds(b'{"a": [1, {"b": 2}]}', 3)
    assert json_depth_exceeds(b'{"a": [1, {"b": 2}]}', 2)
    assert not json_depth_exceeds(b'{"a": "[[[[{{{{\\\\\\"[[["}', 1)
    assert json_depth_exceeds(b"[" * 33 + b"]" * 33, 32)
    assert not json_depth_exceeds(b"[" * 32 + b"]" * 32, 32)


@given(
    st.recursive(
        st.none() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    )
)
def test_the_count_agrees_with_the_decoded_depth(value: object) -> None:
    def depth(v: object) -> int:
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        return 0

    raw = json.dumps(value).encode()
    assert json_depth_exceeds(raw, depth(value)) is False
    if depth(value):
        assert json_depth_exceeds(raw, depth(value) - 1) is True
