"""API keys: their format, their hash, and what each permission and role grants."""

from __future__ import annotations

import hashlib
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domainflow.api.domain.keys import (
    ALL_PERMISSIONS,
    KEY_ID_CHARS,
    ROLE_FULL,
    ROLE_READONLY,
    ROLES,
    SECRET_CHARS,
    generate_key,
    grants,
    hash_key,
    parse_key,
    permissions_for_role,
    role_slug,
    verify_key,
)


def test_permission_names_are_the_seed_table() -> None:
    """Seed 001's table, and ours beside it: domain.update (a send-only domain's upgrade),
    which domain.* and root:full include and root:readonly does not."""
    assert (
        frozenset(
            {
                "domain.create",
                "domain.read",
                "domain.verify",
                "domain.delete",
                "domain.update",
                "mailbox.create",
                "mailbox.read",
                "mailbox.delete",
            }
        )
        == ALL_PERMISSIONS
    )


@pytest.mark.parametrize(("role", "slug"), [(ROLE_FULL, "root"), (ROLE_READONLY, "readonly")])
def test_key_format(role: str, slug: str) -> None:
    issued = generate_key(role=role)
    assert re.fullmatch(
        rf"smx_{slug}_[A-Za-z0-9]{{{KEY_ID_CHARS + SECRET_CHARS}}}", issued.plaintext
    )
    assert issued.plaintext.startswith(f"smx_{slug}_{issued.key_id}")
    assert len(issued.key_id) == KEY_ID_CHARS
    assert issued.hash == hashlib.sha256(issued.plaintext.encode()).hexdigest()


def test_the_prefix_is_configurable_and_checked() -> None:
    assert generate_key(prefix="sos").plaintext.startswith("sos_root_")
    for bad in ("", "SMX", "smx_", "a" * 17, "1abc"):
        with pytest.raises(ValueError, match="prefix"):
            generate_key(prefix=bad)


def test_the_secret_carries_at_least_128_bits() -> None:
    assert SECRET_CHARS * math.log2(62) >= 128


def test_keys_and_ids_do_not_repeat() -> None:
    issued = [generate_key() for _ in range(500)]
    assert len({k.plaintext for k in issued}) == len({k.key_id for k in issued}) == 500


def test_the_plaintext_stays_out_of_reprs_and_logs() -> None:
    issued = generate_key()
    assert issued.plaintext not in repr(issued)
    assert issued.key_id in repr(issued)


def test_hash_and_verify() -> None:
    issued = generate_key()
    assert hash_key(issued.plaintext) == issued.hash
    assert verify_key(issued.plaintext, issued.hash)
    assert not verify_key(issued.plaintext + "x", issued.hash)
    assert not verify_key(generate_key().plaintext, issued.hash)


def test_parse_key_reads_back_what_generate_key_wrote() -> None:
    issued = generate_key(role=ROLE_READONLY)
    parsed = parse_key(issued.plaintext)
    assert parsed is not None
    assert (parsed.role_slug, parsed.key_id) == ("readonly", issued.key_id)
    assert parse_key(generate_key(prefix="sos").plaintext, prefix="sos") is not None


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "smx_root_",
        "smx_admin_" + "a" * 44,
        "smx_root_" + "a" * 43,
        "smx_root_" + "a" * 45,
        "smx_root_" + "a" * 43 + "!",
        "sos_root_" + "a" * 44,
        "Bearer smx_root_" + "a" * 44,
    ],
)
def test_parse_key_refuses_what_cannot_be_a_key(presented: str) -> None:
    assert parse_key(presented) is None


def test_roles() -> None:
    assert sorted(ROLES) == ["root:full", "root:readonly"]
    assert permissions_for_role(ROLE_FULL) == {"*"}
    assert permissions_for_role(ROLE_READONLY) == {"domain.read", "mailbox.read"}
    assert role_slug(ROLE_FULL) == "root"
    assert role_slug(ROLE_READONLY) == "readonly"


@pytest.mark.parametrize("role", ["root", "admin", "root:FULL", "", "root:readonly "])
def test_unknown_roles_are_refused_clearly(role: str) -> None:
    for call in (permissions_for_role, role_slug, lambda r: generate_key(role=r)):
        with pytest.raises(ValueError, match="root:full, root:readonly"):
            call(role)


@pytest.mark.parametrize(
    ("held", "required", "granted"),
    [
        ({"domain.create"}, "domain.create", True),
        ({"domain.create"}, "domain.read", False),
        ({"domain.*"}, "domain.delete", True),
        ({"domain.*"}, "mailbox.read", False),
        ({"mailbox.*"}, "mailbox.create", True),
        ({"*"}, "mailbox.delete", True),
        (set(), "domain.read", False),
        ({"domain"}, "domain.read", False),
        ({"domain."}, "domain.read", False),
        ({"*.read"}, "domain.read", False),  # not a supported pattern; roles expand instead
        ({"DOMAIN.READ"}, "domain.read", False),
    ],
)
def test_grants(held: set[str], required: str, granted: bool) -> None:
    assert grants(held, required) is granted


def test_grants_refuses_to_guess_about_unknown_permissions() -> None:
    with pytest.raises(ValueError, match="not a permission"):
        grants({"*"}, "domain.frobnicate")


def test_grants_accepts_any_iterable_once() -> None:
    assert grants(iter(["mailbox.read", "domain.*"]), "domain.verify")


permission_st = st.sampled_from(sorted(ALL_PERMISSIONS))


@given(permission_st)
def test_root_full_grants_everything(required: str) -> None:
    assert grants(permissions_for_role(ROLE_FULL), required)


@given(permission_st)
def test_root_readonly_grants_exactly_the_reads(required: str) -> None:
    assert grants(permissions_for_role(ROLE_READONLY), required) is required.endswith(".read")


@given(st.sets(permission_st), permission_st)
def test_exact_permissions_grant_only_themselves(held: set[str], required: str) -> None:
    assert grants(held, required) is (required in held)


@given(st.sets(permission_st), permission_st)
def test_an_area_wildcard_grants_its_whole_area(held: set[str], required: str) -> None:
    area = required.split(".")[0]
    assert grants({*held, f"{area}.*"}, required)
