"""Text PostgreSQL cannot store is refused at the edge with a reason, never passed on."""

from __future__ import annotations

import pytest

from domainflow.api.http.problems import ApiError
from domainflow.api.http.text import refuse_unstorable, refuse_unstorable_in_url


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
