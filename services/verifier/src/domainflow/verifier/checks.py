"""Pure rules that judge DNS answers against the records a domain must carry (no I/O).

One function per record kind returns a `RecordCheck` whose reason code and sentence follow
seed 001's troubleshooting advice; `verification_outcome` folds the four checks and SES's DKIM
status into the probe's verdict. Lookups arrive as `LookupResult` values, which the DoH adapter
produces and tests build by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum

from pydantic import JsonValue

from domainflow.contracts.events import (
    CheckOutcome,
    DkimRecord,
    DkimStatus,
    DnsRecords,
    DnsWarning,
    MxRecord,
    NamedRecord,
    RecordCheck,
    RecordKind,
    VerificationOutcome,
)
from domainflow.verifier.lookups import Found as Found
from domainflow.verifier.lookups import LookupResult as LookupResult
from domainflow.verifier.lookups import NoData as NoData
from domainflow.verifier.lookups import NxDomain as NxDomain
from domainflow.verifier.lookups import Unavailable as Unavailable
from domainflow.verifier.spf import (
    LOOKUP_LIMIT,
    VOID_LIMIT,
    Query,
    SpfEvaluation,
    SpfNeeds,
    SpfProblem,
    evaluate_spf,
    merged_spf,
)


class Reason(StrEnum):
    """Machine codes carried in `RecordCheck.reason`."""

    RECORD_MISSING = "record_missing"
    VALUE_MISMATCH = "value_mismatch"
    WRONG_PRIORITY = "wrong_priority"
    ZONE_APPENDED_TWICE = "zone_appended_twice"
    MULTIPLE_SPF_RECORDS = "multiple_spf_records"
    SPF_INCLUDE_MISSING = "spf_include_missing"
    MULTIPLE_DMARC_RECORDS = "multiple_dmarc_records"
    DMARC_POLICY_TOO_WEAK = "dmarc_policy_too_weak"
    RESOLVER_UNAVAILABLE = "resolver_unavailable"
    SPF_TOO_MANY_LOOKUPS = "spf_too_many_lookups"
    SPF_VOID_LOOKUP_LIMIT = "spf_void_lookup_limit"
    SPF_LOOP = "spf_loop"
    SPF_INVALID = "spf_invalid"
    PROPAGATING = "propagating"
    CNAME_CONFLICT = "cname_conflict"
    DELEGATED_ELSEWHERE = "delegated_elsewhere"
    DKIM_CNAME_MISSING = "dkim_cname_missing"
    DKIM_CNAME_MISMATCH = "dkim_cname_mismatch"
    DKIM_PROXIED = "dkim_proxied"
    DKIM_AWAITING_SES = "dkim_awaiting_ses"


def txt_text(strings: Iterable[bytes]) -> str:
    """One TXT record as text: its character-strings joined with nothing between (RFC 7208 §3.3).

    Bytes that are not UTF-8 stay visible as escapes, and so never match an expected value.
    """
    return b"".join(strings).decode("utf-8", errors="backslashreplace")


def hostname(name: str) -> str:
    """A host name for comparison: letter case and the trailing dot do not matter."""
    return name.strip().rstrip(".").lower()


def doubled_zone_names(name: str, zones: Iterable[str]) -> list[str]:
    """Where a provider that appends the zone puts `name`: `<name>.<zone>` for each zone."""
    base = name.rstrip(".")
    seen: list[str] = []
    for zone in zones:
        candidate = f"{base}.{zone.rstrip('.')}"
        if zone.strip(".") and candidate.lower() not in (s.lower() for s in seen):
            seen.append(candidate)
    return seen


def _check(
    kind: RecordKind,
    outcome: CheckOutcome,
    name: str,
    expected: str,
    found: Sequence[str],
    reason: Reason | None,
    message: str,
    details: Mapping[str, JsonValue] | None = None,
) -> RecordCheck:
    return RecordCheck(
        record=kind,
        outcome=outcome,
        name=name,
        expected=expected,
        found=list(found),
        reason=None if reason is None else reason.value,
        message=message,
        details=dict(details or {}),
    )


def _unavailable(kind: RecordKind, name: str, expected: str, why: Unavailable) -> RecordCheck:
    return _check(
        kind,
        CheckOutcome.INCONCLUSIVE,
        name,
        expected,
        [],
        Reason.RESOLVER_UNAVAILABLE,
        f"The DNS resolver could not answer for {name} ({why.reason}); this check counts "
        "neither way and runs again on the next probe.",
    )


# -- MX -----------------------------------------------------------------------------------


def _mx_parts(text: str) -> tuple[int | None, str]:
    priority, _, target = text.strip().partition(" ")
    try:
        return int(priority), hostname(target)
    except ValueError:
        return None, hostname(text)


def check_mx(expected: Sequence[MxRecord], result: LookupResult) -> RecordCheck:
    """Every expected (priority, target) is an MX of the domain itself; other MX may exist."""
    if not expected:
        raise ValueError("no MX record is expected")
    name = expected[0].name
    if any(hostname(mx.name) != hostname(name) for mx in expected):
        raise ValueError("expected MX records must share one name")
    wanted = ", ".join(f"{mx.priority} {mx.target}" for mx in expected)
    kind = RecordKind.MX
    if isinstance(result, Unavailable):
        return _unavailable(kind, name, wanted, result)
    if not isinstance(result, Found):
        return _check(
            kind, CheckOutcome.FAIL, name, wanted, [], Reason.RECORD_MISSING,
            f"No MX record at {name}. Place MX {wanted} on {name} itself — on the domain you "
            "registered (e.g. mail.acme.com, not acme.com).",
        )  # fmt: skip
    found = [text.rstrip(".") for text in result.records]
    parsed = [_mx_parts(text) for text in result.records]
    for mx in expected:
        target = hostname(mx.target)
        if (mx.priority, target) in parsed:
            continue
        priorities = [str(p) for p, host in parsed if host == target and p is not None]
        if priorities:
            return _check(
                kind, CheckOutcome.FAIL, name, wanted, found, Reason.WRONG_PRIORITY,
                f"The MX record at {name} points to {mx.target} with priority "
                f"{', '.join(priorities)}; set the priority to {mx.priority}.",
            )  # fmt: skip
        elsewhere = ", ".join(host or "." for _, host in parsed)
        return _check(
            kind, CheckOutcome.FAIL, name, wanted, found, Reason.VALUE_MISMATCH,
            f"The MX record at {name} points to {elsewhere}, not {mx.target}. Set it to "
            f"{mx.priority} {mx.target}. MX records cannot be proxied — set DNS only.",
        )  # fmt: skip
    return _check(
        kind, CheckOutcome.PASS, name, wanted, found, None, f"MX {wanted} is in place at {name}."
    )


# -- ownership TXT ------------------------------------------------------------------------


def check_verification(
    expected: NamedRecord,
    result: LookupResult,
    elsewhere: Mapping[str, LookupResult] | None = None,
) -> RecordCheck:
    """The ownership TXT holds `expected.value` byte for byte at `expected.name`.

    `elsewhere` holds what the zone-appended-twice names answered (`doubled_zone_names`);
    the caller asks them only when the record is missing, and they only sharpen the verdict.
    """
    name, value, kind = expected.name, expected.value, RecordKind.VERIFICATION_TXT
    if isinstance(result, Unavailable):
        return _unavailable(kind, name, value, result)
    if isinstance(result, Found):
        if value in result.records:
            return _check(
                kind, CheckOutcome.PASS, name, value, result.records, None,
                f"The ownership TXT at {name} matches.",
            )  # fmt: skip
        return _check(
            kind, CheckOutcome.FAIL, name, value, result.records, Reason.VALUE_MISMATCH,
            _ownership_mismatch(name, value, result.records),
        )  # fmt: skip
    for where, answer in (elsewhere or {}).items():
        if isinstance(answer, Found) and value in answer.records:
            zone = where.rstrip(".")[len(name.rstrip(".")) + 1 :]
            typed = name.rstrip(".").removesuffix(f".{zone}")
            return _check(
                kind, CheckOutcome.FAIL, name, value, [f"{where}: {value}"],
                Reason.ZONE_APPENDED_TWICE,
                f"The ownership TXT is at {where}, not {name}: your DNS provider appended the "
                f"zone to the name. Enter the name as {typed} (without {zone}), or in full with "
                f"a trailing dot ({name.rstrip('.')}.).",
            )  # fmt: skip
    doubled = next(iter(elsewhere or {}), f"{name}.{name.partition('.')[2]}")
    return _check(
        kind, CheckOutcome.FAIL, name, value, [], Reason.RECORD_MISSING,
        f"No TXT record at {name}. Confirm the name is exactly {name} (some DNS providers "
        f"append the zone, producing {doubled}) and the value is {value}. TXT records usually "
        "propagate fast, but some resolvers lag: wait 2–5 minutes and retry.",
    )  # fmt: skip


def _ownership_mismatch(name: str, value: str, found: Sequence[str]) -> str:
    prefix, has_prefix, suffix = value.partition("=")
    shown = ", ".join(found)
    if any(text.strip().strip('"') == value for text in found):
        detail = "it has extra spaces or quotes around the value"
    elif has_prefix and any(text.strip() == suffix for text in found):
        detail = f"it is missing the {prefix}= prefix"
    elif has_prefix and any(text.startswith(f"{prefix}=") for text in found):
        detail = "it names another team's public ID"
    else:
        detail = "its value differs"
    return (
        f"The ownership TXT at {name} holds {shown}, but {detail}. The value must be exactly "
        f"{value}, including the {prefix}= prefix and your team's public ID."
        if has_prefix
        else f"The ownership TXT at {name} holds {shown}, but {detail}. It must be exactly {value}."
    )


# -- SPF ----------------------------------------------------------------------------------


def is_spf(text: str) -> bool:
    """RFC 7208 §4.5: the record starts with "v=spf1", then a space or its end (any case)."""
    lowered = text.lower()
    return lowered == "v=spf1" or lowered.startswith("v=spf1 ")


def spf_records(result: LookupResult) -> list[str]:
    """The SPF records among a TXT answer."""
    return [text for text in result.records if is_spf(text)] if isinstance(result, Found) else []


def spf_includes(text: str) -> list[str]:
    """The domains of the record's `include:` mechanisms that authorise (`+` or no qualifier)."""
    domains: list[str] = []
    for term in text.split(" ")[1:]:
        mechanism = term.lower().removeprefix("+")
        if mechanism.startswith("include:"):
            domain = hostname(mechanism.removeprefix("include:"))
            if domain and domain not in domains:
                domains.append(domain)
    return domains


def _spf_details(evaluation: SpfEvaluation) -> dict[str, JsonValue]:
    details: dict[str, JsonValue] = {
        "lookups": evaluation.lookups,
        "void_lookups": evaluation.void_lookups,
        "lookup_costs": dict(evaluation.costs),
    }
    if evaluation.via:
        details["reached_through"] = dict(evaluation.via)
    if evaluation.problem_at:
        details["stopped_at"] = evaluation.problem_at
    return details


def spf_lookups_needed(
    expected: NamedRecord, result: LookupResult, answers: Mapping[Query, LookupResult]
) -> frozenset[Query]:
    """What `check_spf` still needs looked up to evaluate the record as a receiver would."""
    spf = spf_records(result)
    if len(spf) != 1:
        return frozenset()
    evaluation = evaluate_spf(expected.name, spf[0], spf_includes(expected.value), answers)
    return evaluation.queries if isinstance(evaluation, SpfNeeds) else frozenset()


def check_spf(
    expected: NamedRecord,
    result: LookupResult,
    answers: Mapping[Query, LookupResult] | None = None,
) -> RecordCheck:
    """Exactly one SPF record at the name, which authorises every required `include:` when a
    receiver evaluates it (nested includes and `redirect=` followed, RFC 7208 limits applied).

    `answers` holds the lookups the evaluation needs (`spf_lookups_needed`, asked until empty).
    """
    name, value, kind = expected.name, expected.value, RecordKind.SPF
    if isinstance(result, Unavailable):
        return _unavailable(kind, name, value, result)
    found = list(result.records) if isinstance(result, Found) else []
    spf = spf_records(result)
    if not spf:
        return _check(
            kind, CheckOutcome.FAIL, name, value, found, Reason.RECORD_MISSING,
            f"No SPF record (v=spf1) at {name}. Place the TXT record {value} on {name}.",
        )  # fmt: skip
    merged = merged_spf(spf, value)
    if len(spf) > 1:
        return _check(
            kind, CheckOutcome.FAIL, name, value, found, Reason.MULTIPLE_SPF_RECORDS,
            f"{name} has {len(spf)} SPF records; only one per hostname is allowed and two are "
            f"an authentication failure. Merge all your include: mechanisms into one record: "
            f"{merged}",
            {"merged_record": merged},
        )  # fmt: skip
    required = spf_includes(value)
    evaluation = evaluate_spf(name, spf[0], required, answers or {})
    if isinstance(evaluation, SpfNeeds):
        raise ValueError(f"check_spf needs answers for {sorted(evaluation.queries)}")
    details = _spf_details(evaluation)
    if evaluation.unavailable is not None:
        return _check(
            kind, CheckOutcome.INCONCLUSIVE, name, value, found, Reason.RESOLVER_UNAVAILABLE,
            f"The DNS resolver could not answer a lookup the SPF record at {name} needs "
            f"({evaluation.unavailable}); this check counts neither way and runs again on the "
            "next probe.",
            details,
        )  # fmt: skip
    if evaluation.problem is not None:
        details["merged_record"] = merged
        reason = Reason(evaluation.problem.value)
        return _check(
            kind, CheckOutcome.FAIL, name, value, found, reason,
            _spf_problem_sentence(name, evaluation, required, merged), details,
        )  # fmt: skip
    missing = [domain for domain in required if domain not in evaluation.authorised]
    if missing:
        details["merged_record"] = merged
        needed = " ".join(f"include:{domain}" for domain in missing)
        return _check(
            kind, CheckOutcome.FAIL, name, value, found, Reason.SPF_INCLUDE_MISSING,
            f"The SPF record at {name} lacks {needed} (or reaches it only after an all, or "
            f"with a -, ~ or ? qualifier). Add {'it' if len(missing) == 1 else 'them'} to the "
            f"same record: {merged} — and check for typos, SPF is whitespace-sensitive.",
            details,
        )  # fmt: skip
    through = "".join(
        f" It reaches include:{domain} through {chain}." for domain, chain in evaluation.via.items()
    )
    return _check(
        kind, CheckOutcome.PASS, name, value, found, None,
        f"The SPF record at {name} authorises every required sender "
        f"({evaluation.lookups} of {LOOKUP_LIMIT} DNS lookups).{through}",
        details,
    )  # fmt: skip


def _spf_problem_sentence(
    name: str, evaluation: SpfEvaluation, required: Sequence[str], merged: str
) -> str:
    problem, where = evaluation.problem, evaluation.problem_at
    ours = " ".join(f"include:{domain}" for domain in required)
    if problem is SpfProblem.TOO_MANY_LOOKUPS:
        costs = ", ".join(f"{term} costs {cost}" for term, cost in evaluation.costs)
        return (
            f"Receivers stop evaluating the SPF record at {name} after {LOOKUP_LIMIT} DNS "
            f"lookups (a permanent error, so mail fails SPF), and it reaches {ours} only after "
            f"that: {costs}. Put {ours} first and remove or flatten includes you no longer "
            f"use: {merged}"
        )
    if problem is SpfProblem.VOID_LOOKUP_LIMIT:
        return (
            f"The SPF record at {name} makes more than {VOID_LIMIT} lookups that find nothing "
            f"({evaluation.problem_detail}, at {where}); receivers treat that as a permanent "
            "error. Remove the terms that name domains without records."
        )
    if problem is SpfProblem.LOOP:
        return (
            f"The SPF record at {name} loops: {where} ({evaluation.problem_detail}). Receivers "
            "fail it with a permanent error. Remove the include or redirect that points back."
        )
    return (
        f"Receivers cannot evaluate the SPF record at {name}: {evaluation.problem_detail} "
        f"(at {where}), a permanent error. Fix or remove that term: {merged}"
    )


# -- DMARC --------------------------------------------------------------------------------

_POLICY_STRENGTH = {"none": 0, "quarantine": 1, "reject": 2}


def dmarc_tags(text: str) -> dict[str, str] | None:
    """The record's tags (names lower-cased), or None when it is not a DMARC record.

    RFC 7489 §6.3: `v=DMARC1` comes first and matches precisely; anything else is ignored.
    """
    parts = [part.strip() for part in text.split(";")]
    tags: dict[str, str] = {}
    for part in parts:
        key, equals, tag_value = part.partition("=")
        if equals:
            tags.setdefault(key.strip().lower(), tag_value.strip())
    first_key, _, first_value = parts[0].partition("=")
    if first_key.strip() != "v" or first_value.strip() != "DMARC1":
        return None
    return tags


def _policy(tags: Mapping[str, str]) -> str | None:
    policy = tags.get("p")
    return None if policy is None else policy.lower()


def check_dmarc(expected: NamedRecord, result: LookupResult) -> RecordCheck:
    """One DMARC record at `_dmarc.<domain>`, its policy at least as strict as expected."""
    name, value, kind = expected.name, expected.value, RecordKind.DMARC
    if isinstance(result, Unavailable):
        return _unavailable(kind, name, value, result)
    found = list(result.records) if isinstance(result, Found) else []
    parsed = [tags for text in found if (tags := dmarc_tags(text)) is not None]
    required = _policy(dmarc_tags(value) or {}) or "quarantine"
    if not parsed:
        near = [text for text in found if text.strip().lower().startswith("v=dmarc1")]
        if near:
            return _check(
                kind, CheckOutcome.FAIL, name, value, found, Reason.VALUE_MISMATCH,
                f"The TXT record at {name} is not read as DMARC: it must start with exactly "
                f"v=DMARC1 (upper case). Use {value}.",
            )  # fmt: skip
        return _check(
            kind, CheckOutcome.FAIL, name, value, found, Reason.RECORD_MISSING,
            f"No DMARC record at {name}. The record name is {name}, the type is TXT, and the "
            f"value is {value}.",
        )  # fmt: skip
    if len(parsed) > 1:
        return _check(
            kind, CheckOutcome.FAIL, name, value, found, Reason.MULTIPLE_DMARC_RECORDS,
            f"{name} has {len(parsed)} DMARC records, so receivers apply none. Keep one: "
            f"{value}, plus any tags of your own (rua=, pct=, adkim=).",
        )  # fmt: skip
    policy = _policy(parsed[0])
    if policy is not None and policy not in _POLICY_STRENGTH:
        return _check(
            kind, CheckOutcome.FAIL, name, value, found, Reason.VALUE_MISMATCH,
            f"The DMARC record at {name} has an unknown policy p={policy}; use p={required} "
            "or p=reject.",
        )  # fmt: skip
    if policy is None or _POLICY_STRENGTH[policy] < _POLICY_STRENGTH[required]:
        shown = "no p= tag" if policy is None else f"p={policy}"
        return _check(
            kind, CheckOutcome.FAIL, name, value, found, Reason.DMARC_POLICY_TOO_WEAK,
            f"The DMARC record at {name} has {shown}; the minimum is {value}. You can add "
            f"tags (rua=, pct=, adkim=) but don't remove p={required}.",
        )  # fmt: skip
    return _check(
        kind, CheckOutcome.PASS, name, value, found, None,
        f"The DMARC record at {name} enforces p={policy}.",
    )  # fmt: skip


# -- what the zone itself says --------------------------------------------------------------


def _alias(result: LookupResult) -> str | None:
    return result.alias if isinstance(result, Found | NoData) else None


def cname_conflict(check: RecordCheck, result: LookupResult) -> RecordCheck:
    """A failing check at a name that is an alias: its CNAME hides every other record there.

    RFC 1034 §3.6.2: a name with a CNAME holds nothing else, so resolvers answer with the
    target's records (or none) and a TXT or MX placed beside the CNAME is never seen.
    """
    alias = _alias(result)
    if check.outcome != CheckOutcome.FAIL or alias is None:
        return check
    target = alias.rstrip(".")
    return check.model_copy(
        update={
            "reason": Reason.CNAME_CONFLICT.value,
            "message": (
                f"{check.name} is a CNAME (an alias) for {target}, and a name with a CNAME can "
                f"hold no other record: DNS answers with {target}'s records, so the "
                f"{check.record.value.replace('_', ' ').upper()} record you placed at "
                f"{check.name} is hidden. Remove the CNAME at {check.name}, then place the "
                f"record: {check.expected}."
            ),
            "details": {**check.details, "cname_target": target},
        }
    )


def negative_caching_time(soa: LookupResult) -> int | None:
    """How long a resolver may cache "no such record" in a zone: min(SOA TTL, minimum)."""
    if not isinstance(soa, Found) or not soa.records:
        return None
    fields = soa.records[0].split()
    try:
        minimum = int(fields[6])
    except (IndexError, ValueError):
        return None
    return minimum if soa.ttl is None else min(soa.ttl, minimum)


def propagating(
    check: RecordCheck,
    authoritative: RecordCheck,
    cached: LookupResult,
    server: str,
    ttl_bound: int | None = None,
) -> RecordCheck:
    """A check the resolver fails but the zone's own nameserver passes: caches lag behind.

    The time left is the TTL on the resolver's answer (a stale record, or a negative answer
    that carried its SOA), else `ttl_bound`: the zone's negative-caching time, the most a
    resolver may keep "no such record"; unknown when neither is known.
    """
    if check.outcome != CheckOutcome.FAIL or authoritative.outcome != CheckOutcome.PASS:
        return check
    ttl = cached.ttl if isinstance(cached, Found | NxDomain | NoData) else None
    ttl = ttl if ttl is not None else ttl_bound
    shown = ", ".join(check.found) if check.found else "no record"
    wait = (
        f"caches may keep that answer for up to {ttl} s more"
        if ttl is not None
        else "caches keep that answer until its TTL runs out"
    )
    return check.model_copy(
        update={
            "reason": Reason.PROPAGATING.value,
            "message": (
                f"The record at {check.name} is published at your zone's nameserver {server}, "
                f"but the DNS resolver still answers from its cache ({shown}); {wait}. Nothing "
                "to change: verification passes once caches refresh."
            ),
            "details": {
                **check.details,
                "ttl_left": ttl,
                "authority": server,
                "authoritative": list(authoritative.found),
            },
        }
    )


def authority_unreachable(check: RecordCheck, why: str) -> RecordCheck:
    """The zone's nameservers could not be asked: say so, keep the resolver's verdict."""
    return check.model_copy(
        update={
            "message": f"{check.message} (The zone's own nameservers could not be asked — "
            f"{why} — so this is the resolver's view only.)",
            "details": {**check.details, "authority": f"unreachable: {why}"},
        }
    )


def delegated_zone(
    check: RecordCheck, apex: str, parent: str, servers: Sequence[str]
) -> RecordCheck:
    """A missing record under a subdomain that is its own zone, served by other nameservers."""
    if check.outcome != CheckOutcome.FAIL or check.reason != Reason.RECORD_MISSING.value:
        return check
    hosts = ", ".join(servers)
    return check.model_copy(
        update={
            "reason": Reason.DELEGATED_ELSEWHERE.value,
            "message": (
                f"{apex} is delegated: it is its own DNS zone, served by {hosts}, not by "
                f"{parent}'s nameservers. Records placed in {parent}'s zone for names under "
                f"{apex} are never seen; place {check.expected} at {check.name} with the "
                f"provider that runs {hosts}."
            ),
            "details": {**check.details, "zone": apex, "nameservers": list(servers)},
        }
    )


# -- DKIM as DNS shows it -----------------------------------------------------------------


def _dkim_problem(
    record: DkimRecord,
    cname: LookupResult,
    address: LookupResult | None,
    elsewhere: Mapping[str, LookupResult],
) -> tuple[Reason, str] | None:
    """What is wrong with one DKIM CNAME, or None when it points where SES expects."""
    name, target = record.name, hostname(record.value)
    if isinstance(cname, Found) and cname.records:
        found = hostname(cname.records[0])
        if found == target:
            return None
        return (
            Reason.DKIM_CNAME_MISMATCH,
            f"{name} points to {found}, not {record.value}: copy the value again (each of the "
            "three differs).",
        )
    for where, answer in elsewhere.items():
        if isinstance(answer, Found) and answer.records and hostname(answer.records[0]) == target:
            return (
                Reason.ZONE_APPENDED_TWICE,
                f"{name} is at {where}: your DNS provider appended the zone; enter the name "
                "without it (or in full with a trailing dot).",
            )
    if isinstance(address, Found) and address.records:
        return (
            Reason.DKIM_PROXIED,
            f"{name} answers with an address ({', '.join(address.records)}) instead of a CNAME: "
            "it is proxied or flattened. Set it to DNS only (grey cloud) so the CNAME to "
            f"{record.value} is visible.",
        )
    return (Reason.DKIM_CNAME_MISSING, f"No CNAME at {name}: add CNAME {name} → {record.value}.")


def check_dkim_dns(
    expected: Sequence[DkimRecord],
    status: DkimStatus,
    cnames: Mapping[str, LookupResult],
    addresses: Mapping[str, LookupResult],
    elsewhere: Mapping[str, Mapping[str, LookupResult]],
) -> RecordCheck:
    """Why SES does not yet say DKIM success, as the three CNAMEs look from DNS.

    `cnames` holds each name's CNAME answer; for those without one, `addresses` its A answer
    (a proxied CNAME shows as an address) and `elsewhere` the zone-appended-twice names. This
    check explains SES's answer and never decides the outcome (`verification_outcome`).
    """
    if not expected:
        raise ValueError("no DKIM record is expected")
    kind, name = RecordKind.DKIM, expected[0].name
    wanted = ", ".join(f"{r.name} → {r.value}" for r in expected)
    found = [
        f"{r.name} → {answer.records[0].rstrip('.')}"
        for r in expected
        if isinstance(answer := cnames.get(r.name), Found) and answer.records
    ]
    unavailable = [
        r.name for r in expected if isinstance(cnames.get(r.name, Unavailable("")), Unavailable)
    ]
    if unavailable:
        return _unavailable(kind, name, wanted, Unavailable(f"CNAME of {unavailable[0]}"))
    problems = [
        problem
        for r in expected
        if (
            problem := _dkim_problem(
                r, cnames[r.name], addresses.get(r.name), elsewhere.get(r.name, {})
            )
        )
        is not None
    ]
    if not problems:
        return _check(
            kind, CheckOutcome.PASS, name, wanted, found, Reason.DKIM_AWAITING_SES,
            f"All {len(expected)} DKIM CNAMEs are in place; Amazon SES reports {status.value} "
            "and checks them again on its own (it can take up to 72 hours). Nothing to change "
            "in DNS.",
        )  # fmt: skip
    sentences = " ".join(sentence for _, sentence in problems)
    return _check(
        kind, CheckOutcome.FAIL, name, wanted, found, problems[0][0],
        f"Amazon SES reports DKIM {status.value}. {sentences}",
        {"problems": [reason.value for reason, _ in problems]},
    )  # fmt: skip


# -- pre-flight: what is already published that will conflict -----------------------------


def _warning(code: str, name: str, found: Sequence[str], message: str) -> DnsWarning:
    return DnsWarning(code=code, name=name, found=list(found), message=message)


def preflight_warnings(
    records: DnsRecords,
    mx: LookupResult,
    spf: LookupResult,
    dmarc: LookupResult,
    ds: LookupResult,
    dnskey: LookupResult,
    zone: str,
) -> list[DnsWarning]:
    """Conflicts with what is already published, as warnings (never refusals).

    An SPF record for other senders (to merge, not replace), a DMARC record weaker than
    required, a CNAME at the domain's own name (it hides MX and TXT), MX records pointing
    elsewhere (this is a send-and-receive domain), and the zone's DNSSEC state.
    """
    domain = records.spf.name
    warnings: list[DnsWarning] = []
    alias = next((a for a in (_alias(mx), _alias(spf)) if a is not None), None)
    if alias is not None:
        warnings.append(
            _warning(
                "cname_at_domain",
                domain,
                [alias.rstrip(".")],
                f"{domain} is a CNAME for {alias.rstrip('.')}; a name with a CNAME can hold no "
                "MX or TXT record. Remove the CNAME before placing the records, or use "
                "another domain.",
            )
        )
    theirs = spf_records(spf)
    required = spf_includes(records.spf.value)
    if theirs and (len(theirs) > 1 or any(d not in spf_includes(theirs[0]) for d in required)):
        merged = merged_spf(theirs, records.spf.value)
        warnings.append(
            _warning(
                "existing_spf",
                domain,
                theirs,
                f"{domain} already has an SPF record for other senders. Don't add a second "
                f"one (two SPF records fail): replace it with the merged record {merged}",
            )
        )
    tags = [t for text in spf_text(dmarc) if (t := dmarc_tags(text)) is not None]
    required_policy = _policy(dmarc_tags(records.dmarc.value) or {}) or "quarantine"
    if tags:
        policy = _policy(tags[0]) or "none"
        if _POLICY_STRENGTH.get(policy, -1) < _POLICY_STRENGTH[required_policy]:
            warnings.append(
                _warning(
                    "dmarc_weaker",
                    records.dmarc.name,
                    spf_text(dmarc),
                    f"{records.dmarc.name} already has a DMARC record with p={policy}, weaker "
                    f"than the p={required_policy} required. Edit that record (keep your rua= "
                    "and other tags) rather than adding a second one.",
                )
            )
    ours = {hostname(m.target) for m in records.mx}
    # Only a domain that receives (its records carry our MX) competes with MX already there.
    if records.mx and isinstance(mx, Found) and mx.records:
        others = [t for t in mx.records if _mx_parts(t)[1] not in ours]
        if others:
            warnings.append(
                _warning(
                    "mx_elsewhere",
                    domain,
                    [t.rstrip(".") for t in others],
                    f"{domain} already receives mail at "
                    f"{', '.join(_mx_parts(t)[1] for t in others)}. "
                    "This is a send-and-receive domain: once the records are placed, mail to it "
                    "goes to the MX with the lowest priority; remove the old MX records if our "
                    "servers should receive it.",
                )
            )
    if isinstance(ds, Found) and ds.records:
        if isinstance(dnskey, Found) and dnskey.records:
            warnings.append(
                _warning(
                    "dnssec_signed",
                    zone,
                    [],
                    f"{zone} is signed with DNSSEC. Your DNS provider must sign the new records "
                    "too (most do it automatically); unsigned ones look forged to validating "
                    "receivers.",
                )
            )
        else:
            warnings.append(
                _warning(
                    "dnssec_broken",
                    zone,
                    ds.records,
                    f"{zone} has a DS record at its registrar but publishes no DNSKEY: "
                    "validating resolvers reject every answer from the zone, so no record will "
                    "verify. Turn DNSSEC on at your DNS provider, or remove the DS record at "
                    "the registrar.",
                )
            )
    return warnings


def spf_text(result: LookupResult) -> list[str]:
    """Every TXT text of an answer (none when it found nothing)."""
    return list(result.records) if isinstance(result, Found) else []


# -- the whole probe ----------------------------------------------------------------------


_REPORTED_ONLY = frozenset({RecordKind.DKIM, RecordKind.MAIL_FROM_MX, RecordKind.MAIL_FROM_SPF})


def verification_outcome(
    checks: Sequence[RecordCheck], dkim: DkimStatus | None
) -> VerificationOutcome:
    """The probe's verdict from the four DNS checks and SES's DKIM status.

    Anything we could not learn — a check our resolver could not answer, or SES unreachable
    (`dkim` None) — makes the whole probe inconclusive, even beside a definite failure: such a
    probe "counts neither way", so a verified domain never moves toward `failed` (and its owners
    toward an email) while our own side is unwell; a real failure shows on the next probe.
    Otherwise it passed only if every check passed and SES says DKIM `success`. A DKIM status
    other than success (pending, temporary_failure, ...) is a definite answer from SES: failed.
    """
    # The DKIM CNAMEs as DNS shows them only explain SES's answer; they never decide. The
    # MAIL FROM records are reported, not required: SES falls back to its own MAIL FROM.
    checks = [check for check in checks if check.record not in _REPORTED_ONLY]
    if dkim is None or any(check.outcome == CheckOutcome.INCONCLUSIVE for check in checks):
        return VerificationOutcome.INCONCLUSIVE
    if dkim == DkimStatus.SUCCESS and all(check.outcome == CheckOutcome.PASS for check in checks):
        return VerificationOutcome.PASSED
    return VerificationOutcome.FAILED
