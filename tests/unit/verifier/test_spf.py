"""SPF as a receiver evaluates it: includes, redirects, the lookup and void limits, loops."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given
from hypothesis import strategies as st

from domainflow.verifier.lookups import Found, LookupResult, NoData, NxDomain, Unavailable
from domainflow.verifier.spf import (
    LOOKUP_LIMIT,
    Query,
    SpfEvaluation,
    SpfNeeds,
    SpfProblem,
    evaluate_spf,
    merged_spf,
)

REQUIRED = ["amazonses.com", "sendmux.ai"]
OURS = "include:amazonses.com include:sendmux.ai"


def run(record: str, world: Mapping[Query, LookupResult]) -> SpfEvaluation:
    """Evaluate to the end, answering each round from `world` (absent: NXDOMAIN)."""
    answers: dict[Query, LookupResult] = {}
    for _ in range(30):
        result = evaluate_spf("acme.com", record, REQUIRED, answers)
        if isinstance(result, SpfEvaluation):
            return result
        assert result.queries, "asked for nothing"
        assert not result.queries & answers.keys(), "asked twice"
        answers.update({q: world.get(q, NxDomain()) for q in result.queries})
    raise AssertionError("never finished")


def spf(text: str) -> Found:
    return Found((text,))


def test_direct_includes_pass_with_two_lookups() -> None:
    result = run(f"v=spf1 {OURS} ~all", {})
    assert result.authorised == ("amazonses.com", "sendmux.ai")
    assert result.lookups == 2
    assert result.problem is None


def test_a_nested_include_passes_and_names_the_chain() -> None:
    result = run(
        "v=spf1 include:_spf.acme.com -all", {("_spf.acme.com", "TXT"): spf(f"v=spf1 {OURS} -all")}
    )
    assert result.authorised == tuple(REQUIRED)
    assert result.via["amazonses.com"] == "include:_spf.acme.com → include:amazonses.com"
    assert dict(result.costs) == {"include:_spf.acme.com": 3}


def test_a_redirect_passes() -> None:
    result = run(
        "v=spf1 redirect=_spf.acme.com", {("_spf.acme.com", "TXT"): spf(f"v=spf1 {OURS} -all")}
    )
    assert result.authorised == tuple(REQUIRED)
    assert result.via["sendmux.ai"].startswith("redirect=_spf.acme.com")


def test_a_redirect_beside_all_is_ignored() -> None:
    result = run(
        "v=spf1 ~all redirect=_spf.acme.com", {("_spf.acme.com", "TXT"): spf(f"v=spf1 {OURS}")}
    )
    assert result.authorised == ()


def test_an_all_inside_an_include_ends_only_that_include() -> None:
    world = {("_spf.other.com", "TXT"): spf("v=spf1 ip4:192.0.2.1 -all")}
    assert run(f"v=spf1 include:_spf.other.com {OURS} -all", world).authorised == tuple(REQUIRED)


def test_the_eleventh_lookup_fails_with_each_cost_named() -> None:
    vendors = [f"include:v{i}.example" for i in range(4)]
    world: dict[Query, LookupResult] = {
        (f"v{i}.example", "TXT"): spf("v=spf1 a:x.example mx:x.example -all") for i in range(4)
    }
    world[("x.example", "A")] = Found(("192.0.2.1",))
    world[("x.example", "MX")] = Found(("10 x.example.",))
    result = run(f"v=spf1 {' '.join(vendors)} {OURS} ~all", world)
    assert result.problem is SpfProblem.TOO_MANY_LOOKUPS
    assert result.authorised == ()
    assert result.lookups == LOOKUP_LIMIT + 1
    assert dict(result.costs) == {
        **dict.fromkeys(vendors, 3),
        "include:amazonses.com": 1,
        "include:sendmux.ai": 1,
    }


def test_ten_lookups_are_still_allowed() -> None:
    fillers = " ".join(f"a:h{i}.example" for i in range(8))
    world = {(f"h{i}.example", "A"): Found(("192.0.2.1",)) for i in range(8)}
    result = run(f"v=spf1 {fillers} {OURS} -all", world)
    assert result.problem is None
    assert result.lookups == LOOKUP_LIMIT


def test_the_third_void_lookup_fails() -> None:
    world: dict[Query, LookupResult] = {
        ("h0.example", "A"): NxDomain(),
        ("h1.example", "A"): NoData(),
    }
    result = run(f"v=spf1 a:h0.example a:h1.example a:h2.example {OURS} -all", world)
    assert result.problem is SpfProblem.VOID_LOOKUP_LIMIT
    assert result.void_lookups == 3
    two = run(f"v=spf1 a:h0.example a:h1.example {OURS} -all", world)
    assert two.problem is None


def test_a_loop_is_found() -> None:
    world = {
        ("a.example", "TXT"): spf("v=spf1 include:b.example"),
        ("b.example", "TXT"): spf("v=spf1 include:a.example"),
    }
    result = run(f"v=spf1 include:a.example {OURS} -all", world)
    assert result.problem is SpfProblem.LOOP
    assert result.problem_at == "include:a.example → include:b.example → include:a.example"


def test_an_include_without_a_record_is_a_permanent_error() -> None:
    result = run(
        f"v=spf1 include:gone.example {OURS} -all", {("gone.example", "TXT"): Found(("hello",))}
    )
    assert result.problem is SpfProblem.INVALID


def test_a_nested_lookup_the_resolver_cannot_answer_is_temporary() -> None:
    result = run(
        f"v=spf1 include:x.example {OURS} -all", {("x.example", "TXT"): Unavailable("timeout")}
    )
    assert result.unavailable is not None
    assert result.problem is None


def test_siblings_are_asked_in_one_round() -> None:
    record = "v=spf1 include:a.example include:b.example a:c.example mx:d.example -all"
    needs = evaluate_spf("acme.com", record, REQUIRED, {})
    assert isinstance(needs, SpfNeeds)
    assert needs.queries == {
        ("a.example", "TXT"),
        ("b.example", "TXT"),
        ("c.example", "A"),
        ("d.example", "MX"),
    }


def test_problems_after_every_required_sender_is_reached_do_not_matter() -> None:
    result = run(f"v=spf1 {OURS} include:gone.example -all", {})
    assert result.problem is None
    assert result.authorised == tuple(REQUIRED)


def test_merged_record_puts_ours_first_and_keeps_their_all() -> None:
    merged = merged_spf(["v=spf1 include:_spf.google.com -all"], f"v=spf1 {OURS} ~all")
    assert merged == f"v=spf1 {OURS} include:_spf.google.com -all"


# -- properties ---------------------------------------------------------------------------

hosts = st.from_regex(r"[a-z]{1,8}\.example", fullmatch=True)
terms = st.lists(
    st.one_of(
        hosts.map(lambda h: f"include:{h}"),
        hosts.map(lambda h: f"a:{h}"),
        hosts.map(lambda h: f"mx:{h}"),
        st.ip_addresses(v=4).map(lambda ip: f"ip4:{ip}"),
        st.just("ptr"),
    ),
    max_size=14,
)
answers = st.dictionaries(
    hosts,
    st.one_of(
        st.just(NxDomain()),
        terms.map(lambda ts: spf(" ".join(["v=spf1", *ts, "-all"]))),
    ),
    max_size=10,
)


def world_of(records: Mapping[str, LookupResult]) -> dict[Query, LookupResult]:
    world: dict[Query, LookupResult] = {}
    for host, answer in records.items():
        world[(host, "TXT")] = answer
        world[(host, "A")] = Found(("192.0.2.1",)) if isinstance(answer, Found) else answer
        world[(host, "MX")] = Found(("10 mx.example.",)) if isinstance(answer, Found) else answer
    return world


@given(before=terms, after=terms, records=answers)
def test_a_pass_is_within_the_limits(
    before: list[str], after: list[str], records: Mapping[str, LookupResult]
) -> None:
    result = run(" ".join(["v=spf1", *before, OURS, *after, "-all"]), world_of(records))
    if result.problem is None and result.unavailable is None:
        assert result.authorised == tuple(REQUIRED)
        assert result.lookups <= LOOKUP_LIMIT
        assert result.void_lookups <= 2
    else:
        assert result.authorised != tuple(REQUIRED)


@given(before=terms, records=answers)
def test_our_includes_first_always_pass(
    before: list[str], records: Mapping[str, LookupResult]
) -> None:
    result = run(" ".join(["v=spf1", OURS, *before, "-all"]), world_of(records))
    assert result.authorised == tuple(REQUIRED)
    assert result.lookups == 2


@given(records=st.lists(terms, min_size=1, max_size=3))
def test_merging_always_gives_one_record_that_passes(records: list[list[str]]) -> None:
    texts = [" ".join(["v=spf1", *ts, "~all"]) for ts in records]
    merged = merged_spf(texts, f"v=spf1 {OURS} ~all")
    assert merged.startswith(f"v=spf1 {OURS}")
    assert sum(t.endswith("all") for t in merged.split()) == 1
    assert run(merged, {}).authorised == tuple(REQUIRED)
