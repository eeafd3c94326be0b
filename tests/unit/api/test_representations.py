"""The answers a replica keeps: sent again only at the version they were built at."""

from __future__ import annotations

from domainflow.api.domains.representations import Representations
from domainflow.api.domains.schemas import etag_of_encoded


def test_a_kept_answer_is_found_at_its_version_only() -> None:
    kept = Representations(10)
    shown = kept.keep("mdom_a", "7.0", b'{"id":"mdom_a"}')
    assert shown.etag == etag_of_encoded(b'{"id":"mdom_a"}')
    assert kept.at("mdom_a", "7.0") is shown
    assert kept.at("mdom_a", "8.0") is None  # written since
    assert kept.at("mdom_a", "7.1") is None  # a mailbox more
    assert kept.at("mdom_b", "7.0") is None


def test_a_newer_answer_replaces_the_older() -> None:
    kept = Representations(10)
    kept.keep("mdom_a", "7.0", b"old")
    kept.keep("mdom_a", "9.0", b"new")
    assert kept.at("mdom_a", "7.0") is None
    shown = kept.at("mdom_a", "9.0")
    assert shown is not None
    assert shown.body == b"new"
    assert len(kept) == 1


def test_the_least_recently_read_is_forgotten_first() -> None:
    kept = Representations(2)
    kept.keep("mdom_a", "1.0", b"a")
    kept.keep("mdom_b", "1.0", b"b")
    assert kept.at("mdom_a", "1.0") is not None  # read: now the most recent
    kept.keep("mdom_c", "1.0", b"c")
    assert len(kept) == 2
    assert kept.at("mdom_b", "1.0") is None
    assert kept.at("mdom_a", "1.0") is not None
    assert kept.at("mdom_c", "1.0") is not None


def test_size_zero_keeps_nothing_and_nor_does_an_unknown_version() -> None:
    none = Representations(0)
    assert none.keep("mdom_a", "1.0", b"a").body == b"a"
    assert none.at("mdom_a", "1.0") is None
    kept = Representations(5)
    kept.keep("mdom_a", "", b"a")  # not read from the store: no version to check against
    assert kept.at("mdom_a", "") is None
