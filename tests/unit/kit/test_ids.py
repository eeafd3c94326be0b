"""Public ids: cuid2's form (a letter, then base-36), unique, every character in play."""

from __future__ import annotations

import re
import string
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from domainflow.kit.ids import LENGTH, new_id

FORM = re.compile(rf"[a-z][a-z0-9]{{{LENGTH - 1}}}")


@given(st.from_regex(r"[a-z]{1,8}", fullmatch=True))
def test_an_id_is_its_prefix_then_a_cuid2_shaped_body(prefix: str) -> None:
    made = new_id(prefix)
    head, _, body = made.partition("_")
    assert head == prefix
    assert FORM.fullmatch(body), made


def test_a_bare_id_has_no_prefix() -> None:
    assert FORM.fullmatch(new_id())


def test_ids_do_not_repeat() -> None:
    made = [new_id("req") for _ in range(100_000)]
    assert len(set(made)) == len(made)


def test_every_character_is_drawn_near_evenly_at_every_position() -> None:
    # 36,000 ids: each of 36 characters is expected ~1,000 times at a position (a leading
    # letter ~1,385 times); a stuck position, or a character never drawn, is far outside.
    made = [new_id() for _ in range(36_000)]
    for position in range(LENGTH):
        counts = Counter(m[position] for m in made)
        alphabet = (
            string.ascii_lowercase if position == 0 else string.ascii_lowercase + "0123456789"
        )
        assert set(counts) == set(alphabet), position
        expected = len(made) / len(alphabet)
        assert max(counts.values()) < expected * 1.25, (position, counts.most_common(3))
        assert min(counts.values()) > expected * 0.75, (position, counts.most_common()[-3:])
