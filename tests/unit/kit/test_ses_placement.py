"""Placement of a new domain among SES accounts (pure), and the accounts' settings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from domainflow.kit.ses_accounts import AccountUsage, place, usage_of
from domainflow.kit.settings import SesAccount, SesSettings

REGION = "us-east-1"


def account(name: str, *regions: str, cap: int = 10_000) -> SesAccount:
    return SesAccount(name=name, regions=list(regions), identity_cap=cap)


def test_only_accounts_serving_the_region_are_candidates() -> None:
    accounts = [account("eu", "eu-west-1"), account("us", REGION), account("any")]
    assert [u.account for u in usage_of(accounts, REGION, {})] == ["us", "any"]
    assert [u.account for u in usage_of(accounts, "eu-west-1", {})] == ["eu", "any"]


def test_the_account_with_most_room_takes_the_domain() -> None:
    usage = usage_of(
        [account("a", cap=100), account("b", cap=100), account("c", cap=500)],
        REGION,
        {"a": 10, "b": 5, "c": 480},
    )
    assert place(usage) == "b"


def test_a_tie_goes_to_the_account_listed_first() -> None:
    usage = usage_of([account("a"), account("b")], REGION, {})
    assert place(usage) == "a"


def test_an_account_at_its_cap_takes_nothing_and_none_with_room_is_none() -> None:
    usage = usage_of([account("a", cap=2), account("b", cap=3)], REGION, {"a": 2, "b": 3})
    assert place(usage) is None
    assert place(usage_of([account("a", cap=2)], REGION, {"a": 1})) == "a"


def test_the_margin_keeps_room_free() -> None:
    usage = usage_of([account("a", cap=10)], REGION, {"a": 8})
    assert place(usage, margin=1) == "a"
    assert place(usage, margin=2) is None


@given(
    st.lists(st.tuples(st.integers(1, 50), st.integers(0, 60)), min_size=1, max_size=6),
    st.integers(0, 5),
)
def test_placement_never_overfills_and_picks_the_most_free(
    accounts: list[tuple[int, int]], margin: int
) -> None:
    usage = [AccountUsage(f"a{i}", REGION, used, cap) for i, (cap, used) in enumerate(accounts)]
    chosen = place(usage, margin=margin)
    room = [u for u in usage if u.free > margin]
    if not room:
        assert chosen is None
        return
    best = next(u for u in usage if u.account == chosen)
    assert best.identities + 1 + margin <= best.cap
    assert best.free == max(u.free for u in room)


def test_no_accounts_configured_is_the_one_default_account() -> None:
    settings = SesSettings(account="main")
    assert [a.name for a in settings.account_list()] == ["main"]
    assert settings.default_account == "main"


def test_accounts_are_named_once_and_keys_come_in_pairs() -> None:
    with pytest.raises(ValidationError, match="twice"):
        SesSettings(accounts=[{"name": "a"}, {"name": "a"}])
    with pytest.raises(ValidationError, match="both keys"):
        SesAccount(name="a", access_key_id="AKIA")
    with pytest.raises(ValidationError, match="not both"):
        SesAccount(name="a", access_key_id="AKIA", secret_access_key="s", profile="p")
