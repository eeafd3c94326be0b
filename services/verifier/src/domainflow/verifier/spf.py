"""SPF evaluated as a receiving mail server would (RFC 7208 §4.6), for the senders we require.

Pure: `evaluate_spf` walks a record with the answers it has been given and, when it needs one
it lacks, says which (`SpfNeeds`); the caller looks those up (over the same DoH resolver) and
calls again. Each round asks every missing answer of the record being walked at once, so a
tree of includes costs one round per level, not one per lookup.

We have no sending IP to test, so the question is the one that decides whether the required
senders' mail passes: walking the record in evaluation order, is every required `include:`
reached with a pass qualifier before evaluation stops? It stops at an `all`, and with a
permanent error at the 11th DNS-querying term (§4.6.4), the 3rd void lookup, a loop, a
nested include without an SPF record, or a term no receiver understands. Mechanisms that
match other hosts (`a`, `mx`, `ip4`, `exists`...) never match the required senders' servers,
so the walk goes past them, counting their lookups as a receiver does. The required includes
themselves are the operator's own records: they are counted as one lookup each and not
walked into.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from domainflow.verifier.lookups import Found, LookupResult, NoData, NxDomain, Unavailable

#: RFC 7208 §4.6.4: terms that query DNS, per evaluation.
LOOKUP_LIMIT = 10
#: RFC 7208 §4.6.4: lookups answered NXDOMAIN or with no records, per evaluation.
VOID_LIMIT = 2

#: One DNS question: (name without trailing dot, lower case; record type).
Query = tuple[str, str]

_MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
_QUALIFIERS = "+-~?"


class SpfProblem(StrEnum):
    """Why evaluation stopped with a permanent error; the values are check reasons."""

    TOO_MANY_LOOKUPS = "spf_too_many_lookups"
    VOID_LOOKUP_LIMIT = "spf_void_lookup_limit"
    LOOP = "spf_loop"
    INVALID = "spf_invalid"


@dataclass(frozen=True, slots=True)
class SpfNeeds:
    """The answers the walk lacks; look them up and evaluate again."""

    queries: frozenset[Query]


@dataclass(frozen=True, slots=True)
class SpfEvaluation:
    """Where the walk of one record ended, and what it cost on the way."""

    #: Required includes reached with a pass qualifier before evaluation stopped, in order.
    authorised: tuple[str, ...]
    #: Lookups counted when the last required include was reached, or when evaluation stopped.
    lookups: int
    void_lookups: int
    #: Each top-level DNS-querying term and the lookups it cost (itself and everything nested).
    costs: tuple[tuple[str, int], ...]
    #: The permanent error that stopped evaluation, where (a chain of terms), and why.
    problem: SpfProblem | None = None
    problem_at: str = ""
    problem_detail: str = ""
    #: Required includes reached through a nested include or a redirect: the chain to each.
    via: Mapping[str, str] = field(default_factory=dict)
    #: A lookup the resolver could not answer: evaluation would be a temporary error.
    unavailable: str | None = None


def _spf_records(result: LookupResult) -> list[str]:
    """The SPF records among a TXT answer (RFC 7208 §4.5: "v=spf1", then a space or the end)."""
    if not isinstance(result, Found):
        return []
    return [t for t in result.records if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]


def _name(domain: str) -> str:
    return domain.strip().rstrip(".").lower()


class _StopEvaluationError(Exception):
    """Evaluation ended (permanent or temporary error, or an answer is missing)."""


@dataclass
class _Walk:
    required: Sequence[str]
    answers: Mapping[Query, LookupResult]
    #: Include domains counted but never walked into (the required senders' own records).
    opaque: frozenset[str] = frozenset()
    lookups: int = 0
    void: int = 0
    authorised: list[str] = field(default_factory=list)
    via: dict[str, str] = field(default_factory=dict)
    lookups_at_last: int = 0
    needs: set[Query] = field(default_factory=set)
    problem: SpfProblem | None = None
    problem_at: str = ""
    problem_detail: str = ""
    unavailable: str | None = None

    def done(self) -> bool:
        return bool(self.required) and all(domain in self.authorised for domain in self.required)

    def fail(self, problem: SpfProblem, chain: Sequence[str], detail: str) -> _StopEvaluationError:
        self.problem, self.problem_at, self.problem_detail = problem, " → ".join(chain), detail
        return _StopEvaluationError()

    def count(self, chain: Sequence[str]) -> None:
        self.lookups += 1
        if self.lookups > LOOKUP_LIMIT:
            raise self.fail(
                SpfProblem.TOO_MANY_LOOKUPS,
                chain,
                f"{chain[-1]} is DNS lookup {self.lookups}; receivers stop at {LOOKUP_LIMIT}",
            )

    def ask(self, query: Query, chain: Sequence[str]) -> LookupResult | None:
        """The answer to `query`, counting a void one; None when it must be looked up first."""
        answer = self.answers.get(query)
        if answer is None:
            self.needs.add(query)
            return None
        if isinstance(answer, Unavailable):
            self.unavailable = f"{query[0]} {query[1]}: {answer.reason}"
            raise _StopEvaluationError()
        if isinstance(answer, NxDomain | NoData) or (
            isinstance(answer, Found) and not answer.records
        ):
            self.void += 1
            if self.void > VOID_LIMIT:
                raise self.fail(
                    SpfProblem.VOID_LOOKUP_LIMIT,
                    chain,
                    f"{query[0]} is void lookup {self.void} (no such name or no records); "
                    f"receivers allow {VOID_LIMIT}",
                )
        return answer

    def record(self, domain: str, chain: Sequence[str]) -> str | None:
        """The one SPF record of an included or redirected-to domain."""
        answer = self.ask((domain, "TXT"), chain)
        if answer is None:
            return None
        found = _spf_records(answer)
        if len(found) != 1:
            what = "no SPF record" if not found else f"{len(found)} SPF records"
            raise self.fail(SpfProblem.INVALID, chain, f"{domain} has {what}")
        return found[0]

    def walk(self, domain: str, text: str, chain: list[str], stack: tuple[str, ...]) -> None:
        """Evaluate one record's terms in order; nested records recurse."""
        redirect: str | None = None
        has_all = False
        prefetch_only = False  # an answer is missing: keep collecting this record's needs
        for term in text.split()[1:]:
            name, equals, value = term.partition("=")
            if equals and ":" not in name and "/" not in name:
                if name.lower() == "redirect":
                    redirect = _name(value)
                continue  # exp= and unknown modifiers are ignored (§6)
            qualifier = term[0] if term[0] in _QUALIFIERS else "+"
            body = term.lstrip(_QUALIFIERS)
            mechanism, _, argument = body.partition(":")
            mechanism = mechanism.partition("/")[0].lower()
            if mechanism not in _MECHANISMS:
                raise self.fail(SpfProblem.INVALID, [*chain, term], f"{term} is not an SPF term")
            if mechanism == "all":
                has_all = True
                break  # nothing after `all` is ever evaluated, and redirect= is ignored
            if mechanism in ("ip4", "ip6"):
                continue
            here = [*chain, term]
            target = _name(argument.partition("/")[0]) if argument else domain
            if prefetch_only:
                if "%" in target or target in self.opaque or mechanism == "ptr":
                    continue
                kind = {"include": "TXT", "mx": "MX"}.get(mechanism, "A")
                if (target, kind) not in self.answers:
                    self.needs.add((target, kind))
                continue
            self.count(here)
            if mechanism == "include":
                if not argument:
                    raise self.fail(SpfProblem.INVALID, here, "include: needs a domain")
                if target in self.opaque:
                    self._reach(target, qualifier, here)
                    if self.done():
                        return
                    continue
                if "%" in target:
                    continue  # a macro needs the sender to expand: counted, not followed
                if target in stack:
                    raise self.fail(SpfProblem.LOOP, here, f"{target} includes itself")
                nested = self.record(target, here)
                if nested is None:
                    prefetch_only = True
                    continue
                self.walk(target, nested, here, (*stack, target))
                if self.done():
                    return
            elif mechanism in ("a", "exists", "mx") and "%" not in target:
                answer = self.ask((target, "MX" if mechanism == "mx" else "A"), here)
                if answer is None:
                    prefetch_only = True
            # ptr needs the sender's address: counted, nothing to look up
        if self.needs:
            raise _StopEvaluationError()
        if redirect is not None and not has_all:
            here = [*chain, f"redirect={redirect}"]
            self.count(here)
            if redirect in self.opaque:
                self._reach(redirect, "+", here)
                return
            if redirect in stack:
                raise self.fail(SpfProblem.LOOP, here, f"{redirect} redirects back to itself")
            nested = self.record(redirect, here)
            if nested is None:
                raise _StopEvaluationError()
            self.walk(redirect, nested, here, (*stack, redirect))

    def _reach(self, target: str, qualifier: str, chain: Sequence[str]) -> None:
        if qualifier == "+" and target in self.required and target not in self.authorised:
            self.authorised.append(target)
            self.lookups_at_last = self.lookups
            if len(chain) > 1:
                self.via[target] = " → ".join(chain)


def evaluate_spf(
    domain: str,
    record: str,
    required: Sequence[str],
    answers: Mapping[Query, LookupResult],
) -> SpfEvaluation | SpfNeeds:
    """Walk `record` (the one SPF record at `domain`) for the `required` include domains."""
    ours = [_name(r) for r in required]
    walk = _Walk(ours, answers, frozenset(ours))
    top = _name(domain)
    with contextlib.suppress(_StopEvaluationError):
        walk.walk(top, record, [], (top,))
    if walk.needs and walk.problem is None and walk.unavailable is None:
        return SpfNeeds(frozenset(walk.needs))
    costs = _top_costs(top, record, walk.required, answers)
    return SpfEvaluation(
        authorised=tuple(walk.authorised),
        lookups=walk.lookups_at_last if walk.done() else walk.lookups,
        void_lookups=walk.void,
        costs=tuple(costs),
        problem=None if walk.done() else walk.problem,
        problem_at=walk.problem_at,
        problem_detail=walk.problem_detail,
        via=dict(walk.via),
        unavailable=None if walk.done() else walk.unavailable,
    )


def _top_costs(
    domain: str, record: str, required: Sequence[str], answers: Mapping[Query, LookupResult]
) -> list[tuple[str, int]]:
    """What each top-level DNS-querying term costs on its own (with everything it nests).

    Each is walked alone with no required include, so its whole subtree counts; a subtree that
    stops early (an error, an answer never fetched) counts what was walked.
    """
    costs: list[tuple[str, int]] = []
    terms = record.split()[1:]
    for term in terms:
        body = term.lstrip(_QUALIFIERS)
        mechanism = body.partition(":")[0].partition("/")[0].lower()
        name, equals, _value = term.partition("=")
        if equals and name.lower() == "redirect":
            if any(t.lstrip(_QUALIFIERS).lower() == "all" for t in terms):
                continue
            single = f"v=spf1 {term}"
        elif mechanism in ("include", "a", "mx", "ptr", "exists"):
            single = f"v=spf1 {term}"
        else:
            continue
        alone = _Walk([], answers, frozenset(required))
        with contextlib.suppress(_StopEvaluationError):
            alone.walk(domain, single, [], (domain,))
        costs.append((term, alone.lookups))
    return costs


def merged_spf(records: Sequence[str], expected: str) -> str:
    """One record that keeps every term of `records` and adds what `expected` needs.

    The expected includes go first, so receivers reach them before any lookup budget is spent;
    the customer's own terms follow in their order, then a single `all` (theirs if they had
    one, since it states their policy; a `redirect=` is kept only when no `all` ends it).
    """
    ours = [t for t in expected.split()[1:] if t and t.lstrip(_QUALIFIERS).lower() != "all"]
    terms: list[str] = list(ours)
    endings: list[str] = []
    redirects: list[str] = []
    for text in [*records, expected]:
        for term in text.split()[1:]:
            lowered = term.lower()
            if lowered.lstrip(_QUALIFIERS) == "all":
                bucket = endings
            elif lowered.startswith("redirect="):
                bucket = redirects
            else:
                bucket = terms
            if lowered not in (t.lower() for t in bucket):
                bucket.append(term)
    tail = endings[:1] or redirects[:1]
    return " ".join(["v=spf1", *terms, *tail])
