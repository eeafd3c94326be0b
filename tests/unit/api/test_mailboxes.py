"""Mailbox addresses: RFC 5321 dot-atom local parts, checked domains, and each team's suffix."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domainflow.api.domain.mailboxes import (
    MAX_LOCAL_PART_OCTETS,
    MailboxAddressInvalid,
    normalize_address,
    shared_suffix_domain,
)
from domainflow.api.domain.names import normalize_domain


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("bot@acme.com", ("bot", "acme.com")),
        ("first.last@mail.acme.com", ("first.last", "mail.acme.com")),
        ("a+tag@acme.com", ("a+tag", "acme.com")),
        ("o'neil@acme.com", ("o'neil", "acme.com")),
        ("x!#$%&'*+/=?^_`{|}~-@acme.com", ("x!#$%&'*+/=?^_`{|}~-", "acme.com")),
        ("bot@bücher.example", ("bot", "xn--bcher-kva.example")),
        ("a" * 64 + "@acme.com", ("a" * 64, "acme.com")),
    ],
)
def test_valid_addresses(raw: str, expected: tuple[str, str]) -> None:
    assert normalize_address(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (None, "address_missing"),
        ("", "address_missing"),
        ("  ", "address_missing"),
        (5, "address_not_string"),
        ("bot @acme.com", "address_has_whitespace"),
        ("bot.acme.com", "address_missing_at"),
        ("a@b@acme.com", "address_multiple_at"),
        ('"a@b"@acme.com', "address_multiple_at"),
        ("Bot@acme.com", "address_uppercase"),
        ("bot@Acme.com", "address_uppercase"),
        ("@acme.com", "local_part_missing"),
        ("a" * 65 + "@acme.com", "local_part_too_long"),
        (".bot@acme.com", "local_part_bad_dot"),
        ("bot.@acme.com", "local_part_bad_dot"),
        ("b..ot@acme.com", "local_part_bad_dot"),
        ('"bot"@acme.com', "local_part_invalid_characters"),
        ("b(o)t@acme.com", "local_part_invalid_characters"),
        ("b,ot@acme.com", "local_part_invalid_characters"),
        ("bö@acme.com", "local_part_invalid_characters"),
        ("bot@", "domain_missing"),
        ("bot@localhost", "domain_single_label"),
        ("bot@acme.com.", "domain_trailing_dot"),
        ("bot@co.uk", "domain_is_public_suffix"),
        ("bot@[192.0.2.1]", "domain_is_ip_address"),
        ("a" * 64 + "@" + ".".join(["b" * 63] * 3) + ".com", "address_too_long"),
    ],
)
def test_every_bad_address_has_its_own_code(raw: object, code: str) -> None:
    with pytest.raises(MailboxAddressInvalid) as caught:
        normalize_address(raw)
    assert caught.value.code == code
    assert caught.value.message


def test_domain_problems_keep_the_domain_message() -> None:
    with pytest.raises(MailboxAddressInvalid) as caught:
        normalize_address("bot@https")
    assert caught.value.message.startswith("The part after the @: ")


ATEXT = string.ascii_lowercase + string.digits + "!#$%&'*+/=?^_`{|}~-"
atom_st = st.text(alphabet=ATEXT, min_size=1, max_size=10)
local_st = (
    st.lists(atom_st, min_size=1, max_size=5)
    .map(".".join)
    .filter(lambda local: len(local) <= MAX_LOCAL_PART_OCTETS)
)


@given(local_st, st.sampled_from(["acme.com", "mail.acme.com", "bücher.example"]))
def test_dot_atom_local_parts_round_trip(local: str, domain: str) -> None:
    assert normalize_address(f"{local}@{domain}") == (local, normalize_domain(domain))


@given(local_st, st.sampled_from([".", ".."]), st.booleans())
def test_dots_at_the_edges_are_refused(local: str, dots: str, at_start: bool) -> None:
    raw = f"{dots}{local}@acme.com" if at_start else f"{local}{dots}@acme.com"
    with pytest.raises(MailboxAddressInvalid) as caught:
        normalize_address(raw)
    assert caught.value.code in {"local_part_bad_dot", "local_part_too_long"}


def test_shared_suffix_domain_is_one_per_team() -> None:
    assert shared_suffix_domain("team_abc123") == "abc123.myagent.mx"
    assert shared_suffix_domain("team_abc123", "agents.sendmailos.com") == (
        "abc123.agents.sendmailos.com"
    )
    assert shared_suffix_domain("team_a_b") == "a-b.myagent.mx"
    assert shared_suffix_domain("abc") == "abc.myagent.mx"


@pytest.mark.parametrize("team", ["team_", "team_-x", "team_x y", "team_" + "a" * 64, "team_é"])
def test_shared_suffix_domain_refuses_ids_that_make_no_label(team: str) -> None:
    with pytest.raises(ValueError, match="label"):
        shared_suffix_domain(team)


def test_shared_suffix_domain_needs_a_usable_shared_domain() -> None:
    with pytest.raises(ValueError, match="not a usable domain"):
        shared_suffix_domain("team_abc", "My-Agent.mx")


@given(st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=40))
def test_shared_suffix_domains_are_distinct_valid_hostnames(slug: str) -> None:
    domain = shared_suffix_domain(f"team_{slug}")
    assert normalize_domain(domain) == domain
    assert domain == f"{slug}.myagent.mx"
    local, found = normalize_address(f"bot@{domain}")
    assert (local, found) == ("bot", domain)
