"""Pure rules that judge DNS answers against the records a domain must carry (no I/O).

One function per record kind returns a `RecordCheck` whose reason code and sentence follow
seed 001's troubleshooting advice; `verification_outcome` folds the four checks and SES's DKIM
status into the probe's verdict. Lookups arrive as `LookupResult` values, which the DoH adapter
produces and tests build by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from domainflow.contracts.events import (
    CheckOutcome,
    DkimStatus,
    MxRecord,
    NamedRecord,
    RecordCheck,
    RecordKind,
    VerificationOutcome,
)

# -- what a lookup can say ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Found:
    """NOERROR with records of the asked type (CNAMEs followed): each rdata as text.

    A TXT record is the concatenation of all its character-strings, decoded (`txt_text`).
    """

    records: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NxDomain:
    """The name does not exist."""


@dataclass(frozen=True, slots=True)
class NoData:
    """The name exists (NOERROR) but has no record of the asked type."""


@dataclass(frozen=True, slots=True)
class Unavailable:
    """No trustworthy answer: timeout, SERVFAIL, REFUSED, connection error, bad HTTP status."""

    reason: str


LookupResult = Found | NxDomain | NoData | Unavailable


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
) -> RecordCheck:
    return RecordCheck(
        record=kind,
        outcome=outcome,
        name=name,
        expected=expected,
        found=list(found),
        reason=None if reason is None else reason.value,
        message=message,
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


def _merged_spf(records: Sequence[str], expected: str) -> str:
    """One record that keeps every term of `records` and adds what `expected` needs."""
    terms: list[str] = []
    endings: list[str] = []
    for text in [*records, expected]:
        for term in text.split(" ")[1:]:
            if not term:
                continue
            is_all = term.lower().lstrip("+-~?") == "all"
            bucket = endings if is_all else terms
            if term.lower() not in (t.lower() for t in bucket):
                bucket.append(term)
    return " ".join(["v=spf1", *terms, *endings[:1]])


def check_spf(expected: NamedRecord, result: LookupResult) -> RecordCheck:
    """Exactly one SPF record at the name, carrying every `include:` of the expected value."""
    name, value, kind = expected.name, expected.value, RecordKind.SPF
    if isinstance(result, Unavailable):
        return _unavailable(kind, name, value, result)
    found = list(result.records) if isinstance(result, Found) else []
    spf = [text for text in found if is_spf(text)]
    if not spf:
        return _check(
            kind, CheckOutcome.FAIL, name, value, found, Reason.RECORD_MISSING,
            f"No SPF record (v=spf1) at {name}. Place the TXT record {value} on {name}.",
        )  # fmt: skip
    if len(spf) > 1:
        return _check(
            kind, CheckOutcome.FAIL, name, value, found, Reason.MULTIPLE_SPF_RECORDS,
            f"{name} has {len(spf)} SPF records; only one per hostname is allowed and two are "
            "an authentication failure. Merge all your include: mechanisms into one record: "
            f"{_merged_spf(spf, value)}",
        )  # fmt: skip
    present = set(spf_includes(spf[0]))
    missing = [domain for domain in spf_includes(value) if domain not in present]
    if missing:
        needed = " ".join(f"include:{domain}" for domain in missing)
        return _check(
            kind, CheckOutcome.FAIL, name, value, found, Reason.SPF_INCLUDE_MISSING,
            f"The SPF record at {name} lacks {needed}. Add "
            f"{'it' if len(missing) == 1 else 'them'} to the same record: "
            f"{_merged_spf(spf, value)} — and check for typos, SPF is whitespace-sensitive.",
        )  # fmt: skip
    return _check(
        kind, CheckOutcome.PASS, name, value, found, None,
        f"The SPF record at {name} includes everything required.",
    )  # fmt: skip


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


# -- the whole probe ----------------------------------------------------------------------


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
    if dkim is None or any(check.outcome == CheckOutcome.INCONCLUSIVE for check in checks):
        return VerificationOutcome.INCONCLUSIVE
    if dkim == DkimStatus.SUCCESS and all(check.outcome == CheckOutcome.PASS for check in checks):
        return VerificationOutcome.PASSED
    return VerificationOutcome.FAILED
