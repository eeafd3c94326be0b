"""The emails, pure: a transition in, a subject with plain-text and HTML parts out.

Every string that came from outside (the domain, record names, values found in DNS, the
verifier's sentences, the api's reason) is HTML-escaped in the HTML part and stripped of
control characters in both parts and the subject, so a TXT record cannot inject markup, a
header, or a fake paragraph. The advice follows the troubleshooting guide of seed 001.

The verifier's reason codes this module knows (`RecordCheck.reason`): `record_missing`,
`value_mismatch`, `wrong_priority`, `zone_appended_twice`, `multiple_spf_records`,
`spf_include_missing`, `multiple_dmarc_records`, `dmarc_policy_too_weak`, the SPF evaluation's
`spf_*`, `cname_conflict`, `propagating`, `delegated_elsewhere` and the `dkim_*` diagnoses. Any
other code still gets the record's general advice.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from domainflow.contracts import (
    ChangeReason,
    CheckOutcome,
    DkimStatus,
    DomainStatus,
    NotificationRequested,
    RecordCheck,
    RecordKind,
)

#: Longest value shown from outside; a TXT record may be kilobytes of someone else's text.
MAX_VALUE_CHARS = 500

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Problem:
    """One failing item of the mail: a DNS record, or SES's DKIM verdict."""

    title: str
    name: str
    expected: str
    found: tuple[str, ...]
    sentence: str
    advice: tuple[str, ...]


def clean(value: str, limit: int = MAX_VALUE_CHARS) -> str:
    """One line of outside text: control characters (newlines too) become spaces, cut at `limit`."""
    flat = _CONTROL.sub(" ", value).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_TITLES: dict[RecordKind, str] = {
    RecordKind.MX: "MX record",
    RecordKind.VERIFICATION_TXT: "Ownership TXT record",
    RecordKind.SPF: "SPF record (TXT)",
    RecordKind.DMARC: "DMARC record (TXT)",
    RecordKind.DKIM: "DKIM CNAME records",
    RecordKind.MAIL_FROM_MX: "MAIL FROM MX record",
    RecordKind.MAIL_FROM_SPF: "MAIL FROM SPF record (TXT)",
}

_PROXY = (
    "If your DNS provider offers proxying, this record cannot be proxied: set it to “DNS only”."
)

# Advice templates: `{name}`, `{expected}` and `{domain}` are filled with cleaned values.
_RECORD_ADVICE: dict[RecordKind, tuple[str, ...]] = {
    RecordKind.VERIFICATION_TXT: (
        "Confirm the record name is exactly {name}: some DNS providers append the zone "
        "automatically, producing {name}.{domain}.",
        "Confirm the value is exactly {expected}, including its prefix and your team's ID.",
        "TXT records usually propagate within minutes, but some resolvers lag.",
    ),
    RecordKind.MX: (
        "Check that the MX target is {expected} (a trailing dot is fine).",
        "Make sure the MX is on {name} itself, not on its parent domain.",
        _PROXY,
    ),
    RecordKind.SPF: (
        "Only one SPF record per hostname is allowed: merge every include: mechanism into "
        "one record, e.g. {expected}.",
        "Check for typos: SPF is whitespace-sensitive.",
    ),
    RecordKind.MAIL_FROM_MX: (
        "Place MX {expected} on {name}: Amazon SES receives bounces for your mail there.",
        _PROXY,
    ),
    RecordKind.MAIL_FROM_SPF: (
        "Place the TXT record {expected} on {name}, the subdomain your mail's bounces use.",
    ),
    RecordKind.DMARC: (
        "The record name is {name} and its type is TXT.",
        "The value must keep the policy of {expected}; you may add tags (rua=, pct=, "
        "adkim=) but not weaken or remove p=.",
    ),
}

# Advice for a known reason code. Codes that pin the problem down replace the record's general
# advice; `record_missing` and `value_mismatch` add to it (see `_GENERAL_TOO`).
_REASON_ADVICE: dict[str, tuple[str, ...]] = {
    "zone_appended_twice": (
        "Your DNS provider appended the zone to the name you typed, so the record sits at "
        "{name}.{domain}: enter only the part before your zone (or end the name with a dot).",
        "Confirm the value is exactly {expected}, including its prefix and your team's ID.",
    ),
    "multiple_spf_records": (
        "There is more than one SPF record on {name}, which is an authentication failure "
        "on its own: merge every include: mechanism into a single record, e.g. {expected}.",
        "Check for typos: SPF is whitespace-sensitive.",
    ),
    "dmarc_policy_too_weak": (
        "The DMARC policy is weaker than required: the value must keep the policy of "
        "{expected} (p=none does not protect your domain).",
        "You may add tags (rua=, pct=, adkim=) to the same record, but not weaken p=.",
    ),
    "wrong_priority": (
        "The MX priority differs: the expected record is {expected}.",
        _PROXY,
    ),
    "spf_include_missing": (
        "The SPF record on {name} lacks a required include: mechanism: it must contain "
        "every include: of {expected} (other mechanisms may stay).",
        "Check for typos: SPF is whitespace-sensitive.",
    ),
    "multiple_dmarc_records": (
        "There is more than one DMARC record at {name}: keep a single one with the policy "
        "of {expected}.",
    ),
    "record_missing": (
        "No record was found at {name}: add it at your DNS provider exactly as listed.",
    ),
    "value_mismatch": (
        "A record exists at {name} but its value differs: replace it with the expected "
        "value, byte for byte.",
    ),
    "spf_too_many_lookups": (
        "Receivers stop evaluating an SPF record after 10 DNS lookups, and yours reaches the "
        "required includes only after that: put them first and remove includes you no "
        "longer use.",
    ),
    "spf_void_lookup_limit": (
        "The SPF record on {name} names more than two domains that have no records: remove "
        "those terms.",
    ),
    "spf_loop": (
        "The SPF record on {name} includes itself in a loop: remove the include that points back.",
    ),
    "spf_invalid": (
        "Receivers cannot read a term of the SPF record on {name} (often a stray space after "
        "include:): fix or remove it.",
    ),
    "cname_conflict": (
        "{name} is a CNAME, and a name with a CNAME can hold no other record: remove the "
        "CNAME, then place the record.",
    ),
    "propagating": (
        "The record is published at your zone's nameservers; resolvers' caches have not caught "
        "up yet. Nothing to change.",
    ),
    "delegated_elsewhere": (
        "The name sits in a subdomain delegated to other nameservers: place the record with "
        "the provider that runs them.",
    ),
    "dkim_cname_missing": ("Add the missing DKIM CNAME records exactly as listed.",),
    "dkim_cname_mismatch": (
        "A DKIM CNAME points to the wrong target: each of the three has its own value.",
    ),
    "dkim_proxied": (
        "A DKIM CNAME is proxied or flattened: set it to “DNS only” so the CNAME is visible.",
    ),
    "dkim_awaiting_ses": (
        "The DKIM CNAMEs are in place; Amazon SES confirms them on its own, within 72 hours.",
    ),
}
_GENERAL_TOO = frozenset({"record_missing", "value_mismatch"})

_REASON_SENTENCES: dict[str, str] = {
    "record_missing": "No record was found.",
    "value_mismatch": "The value found does not match the expected one.",
    "zone_appended_twice": "The record was placed with the zone appended twice.",
    "multiple_spf_records": "More than one SPF record was found.",
    "dmarc_policy_too_weak": "The DMARC policy is weaker than required.",
    "wrong_priority": "The MX priority is not the expected one.",
    "spf_include_missing": "The SPF record lacks a required include: mechanism.",
    "multiple_dmarc_records": "More than one DMARC record was found.",
}

_DKIM_SENTENCES: dict[DkimStatus, str] = {
    DkimStatus.PENDING: "Amazon SES has not yet seen the three DKIM CNAMEs.",
    DkimStatus.TEMPORARY_FAILURE: "Amazon SES could not verify the DKIM CNAMEs for now "
    "(temporary_failure).",
    DkimStatus.FAILED: "Amazon SES could not verify the DKIM CNAMEs (failed).",
    DkimStatus.NOT_STARTED: "Amazon SES has not started DKIM verification.",
}

_DKIM_ADVICE: tuple[str, ...] = (
    "Confirm all three CNAMEs are in place, each named {{token}}._domainkey.{domain} and "
    "pointing at {{token}}.dkim.amazonses.com.",
    "DKIM records must be set to “DNS only” (not proxied), same as MX.",
)
_DKIM_STATUS_ADVICE: dict[DkimStatus, tuple[str, ...]] = {
    DkimStatus.TEMPORARY_FAILURE: (
        "SES retries by itself: temporary_failure usually clears within an hour once the "
        "records are correct.",
    ),
    DkimStatus.FAILED: (
        "If failed persists for more than 72 hours with the records in place, contact support.",
    ),
}


def _fill(templates: Sequence[str], **values: str) -> tuple[str, ...]:
    # Templates are constants; only their placeholders take (cleaned) outside text.
    return tuple(t.format(**values) for t in templates)


def record_problem(check: RecordCheck, domain: str) -> Problem:
    """A failing DoH check as the mail shows it, with seed 001's advice for its reason."""
    values = {
        "name": clean(check.name),
        "expected": clean(check.expected),
        "domain": clean(domain),
    }
    reason = check.reason or ""
    advice = _fill(_REASON_ADVICE.get(reason, ()), **values)
    if reason not in _REASON_ADVICE or reason in _GENERAL_TOO:
        advice += _fill(_RECORD_ADVICE.get(check.record, ()), **values)
    sentence = clean(check.message) or _REASON_SENTENCES.get(reason, "")
    if not sentence:
        sentence = f"The check failed ({clean(reason, 80)})." if reason else "The check failed."
    return Problem(
        title=_TITLES.get(check.record, clean(str(check.record))),
        name=values["name"],
        expected=values["expected"],
        found=tuple(clean(v) for v in check.found),
        sentence=sentence,
        advice=advice,
    )


def dkim_problem(status: DkimStatus, domain: str) -> Problem:
    name = f"{{token}}._domainkey.{clean(domain)}"
    return Problem(
        title="DKIM (Amazon SES)",
        name=name + " (×3)",
        expected="SES DKIM status: success",
        found=(f"SES DKIM status: {status.value}",),
        sentence=_DKIM_SENTENCES.get(status, f"SES reports DKIM status {status.value}."),
        advice=_fill(_DKIM_ADVICE, domain=clean(domain)) + _DKIM_STATUS_ADVICE.get(status, ()),
    )


def problems_of(event: NotificationRequested) -> list[Problem]:
    """Every failing record of the transition, then DKIM when SES has not said success."""
    found = [
        record_problem(check, event.domain)
        for check in event.checks
        if check.outcome is CheckOutcome.FAIL
    ]
    dkim = event.ses_dkim_status
    if dkim is not None and dkim is not DkimStatus.SUCCESS:
        found.append(dkim_problem(dkim, event.domain))
    return found


def compose(event: NotificationRequested, *, dashboard_url: str | None = None) -> Email:
    """The mail owners get for this transition: verified, claimed by another team, or a
    problem to fix; or, with no transition, the registration ending soon."""
    if event.reason_code is ChangeReason.REGISTRATION_EXPIRING:
        return expiry_email(event, dashboard_url=dashboard_url)
    if event.new_status is DomainStatus.VERIFIED:
        return verified_email(event, dashboard_url=dashboard_url)
    if event.reason_code is ChangeReason.CLAIMED:
        return claimed_email(event, dashboard_url=dashboard_url)
    return problem_email(event, dashboard_url=dashboard_url)


def _verify_hint(event: NotificationRequested) -> str:
    path = f"POST /api/v1/domains/{clean(event.domain_id, 100)}/verify"
    if event.new_status is DomainStatus.FAILED:
        return (
            "A failed domain is not re-checked automatically: once the records are fixed, "
            f"ask for a verification ({path})."
        )
    return (
        "Once the records are fixed the domain is re-checked automatically every six hours; "
        f"to check sooner, ask for a verification ({path})."
    )


def problem_email(event: NotificationRequested, *, dashboard_url: str | None = None) -> Email:
    domain = clean(event.domain, 253)
    status = event.new_status.value
    problems = problems_of(event)
    subject = (
        f"Action needed: {domain} failed DNS verification"
        if event.new_status is DomainStatus.FAILED
        else f"{domain} is now {status}"
    )
    intro = (
        f"Your sending domain {domain} is now {status}: its DNS records did not verify on "
        "consecutive checks, so mail from it may be rejected or marked as spam until they "
        "are fixed."
        if event.new_status is DomainStatus.FAILED
        else f"Your sending domain {domain} is now {status}."
    )
    why = clean(event.reason)
    hint = _verify_hint(event)
    none_reported = "The last check did not say which record failed; review every record."

    text = [intro, ""]
    if why:
        text += [f"Why: {why}", ""]
    if problems:
        text.append("What failed:")
        for number, p in enumerate(problems, 1):
            text += [
                "",
                f"{number}. {p.title}: {p.name}",
                f"   Expected: {p.expected}",
                f"   Found:    {'; '.join(p.found) if p.found else '(nothing)'}",
                f"   Problem:  {p.sentence}",
            ]
            if p.advice:
                text.append("   What to do:")
                text += [f"   - {line}" for line in p.advice]
    else:
        text.append(none_reported)
    text += ["", hint]
    if dashboard_url:
        text += ["", f"See the domain: {clean(dashboard_url)}"]
    text += ["", f"Domain ID: {clean(event.domain_id, 100)}"]

    e = html.escape
    parts = [f"<p>{e(intro)}</p>"]
    if why:
        parts.append(f"<p><strong>Why:</strong> {e(why)}</p>")
    if problems:
        parts.append("<h2>What failed</h2><ol>")
        for p in problems:
            found = "<br>".join(f"<code>{e(v)}</code>" for v in p.found) if p.found else "(nothing)"
            parts.append(
                f"<li><p><strong>{e(p.title)}</strong>: <code>{e(p.name)}</code></p>"
                '<table role="presentation">'
                f'<tr><th align="left">Expected</th><td><code>{e(p.expected)}</code></td></tr>'
                f'<tr><th align="left">Found</th><td>{found}</td></tr>'
                f'<tr><th align="left">Problem</th><td>{e(p.sentence)}</td></tr>'
                "</table>"
            )
            if p.advice:
                parts.append("<p>What to do:</p><ul>")
                parts += [f"<li>{e(line)}</li>" for line in p.advice]
                parts.append("</ul>")
            parts.append("</li>")
        parts.append("</ol>")
    else:
        parts.append(f"<p>{e(none_reported)}</p>")
    parts.append(f"<p>{e(hint)}</p>")
    parts += _html_footer(event, dashboard_url)
    return Email(subject=subject, text="\n".join(text) + "\n", html=_page(subject, parts))


def verified_email(event: NotificationRequested, *, dashboard_url: str | None = None) -> Email:
    domain = clean(event.domain, 253)
    subject = f"{domain} is verified"
    body = (
        f"Your sending domain {domain} is verified: every DNS record is in place and Amazon "
        "SES signs its mail with DKIM. You can now create mailboxes and send from it."
    )
    watch = (
        "domainflow keeps re-checking the records every six hours and will write again if "
        "they stop resolving correctly."
    )
    text = [body, "", watch]
    if dashboard_url:
        text += ["", f"See the domain: {clean(dashboard_url)}"]
    text += ["", f"Domain ID: {clean(event.domain_id, 100)}"]
    parts = [f"<p>{html.escape(body)}</p>", f"<p>{html.escape(watch)}</p>"]
    parts += _html_footer(event, dashboard_url)
    return Email(subject=subject, text="\n".join(text) + "\n", html=_page(subject, parts))


def claimed_email(event: NotificationRequested, *, dashboard_url: str | None = None) -> Email:
    """The name went to another team that showed, in DNS, that it is theirs."""
    domain = clean(event.domain, 253)
    subject = f"{domain} was claimed by its owner"
    body = (
        f"Another team published its ownership TXT record for {domain} while your team had "
        "not proven the name (or your ownership TXT was no longer published), and claimed "
        f"it. Your domain {domain} is being removed from Amazon SES and the mail server, as "
        "a deletion would remove it."
    )
    why = f"Why: {clean(event.reason)}"
    hint = (
        "If the name is yours, publish your ownership TXT record, remove the other team's, "
        "and add the domain again: the name then goes to whoever the DNS shows."
    )
    text = [body, "", why, "", hint]
    if dashboard_url:
        text += ["", f"See your domains: {clean(dashboard_url)}"]
    text += ["", f"Domain ID: {clean(event.domain_id, 100)}"]
    e = html.escape
    parts = [f"<p>{e(body)}</p>", f"<p>{e(why)}</p>", f"<p>{e(hint)}</p>"]
    parts += _html_footer(event, dashboard_url)
    return Email(subject=subject, text="\n".join(text) + "\n", html=_page(subject, parts))


def days_left(ends: datetime, at: datetime) -> int:
    """Whole days from `at` until `ends` (negative once it has passed)."""
    return (ends - at).days


def expiry_email(event: NotificationRequested, *, dashboard_url: str | None = None) -> Email:
    """The zone's registration ends soon (or has ended): renew it at the registrar."""
    domain = clean(event.domain, 253)
    ends = event.registration_expires_at
    when = ends.date().isoformat() if ends is not None else "soon"
    left = days_left(ends, event.occurred_at) if ends is not None else None
    if left is not None and left < 0:
        subject = f"Action needed: the registration of {domain} has expired"
        body = (
            f"The domain registration behind your sending domain {domain} expired on {when}. "
            "Until it is renewed the domain may stop resolving at any time, and mail to and "
            "from it then fails."
        )
    else:
        if left is None:
            span = "a few days"
        elif left == 0:
            span = "less than a day"
        else:
            span = f"{left} day" if left == 1 else f"{left} days"
        subject = f"Action needed: the registration of {domain} expires on {when}"
        body = (
            f"The domain registration behind your sending domain {domain} expires on {when} "
            f"({span} left). If it lapses the domain stops resolving, and mail to and from "
            "it fails."
        )
    todo = (
        "Renew the domain at your registrar (or turn on automatic renewal there). Nothing "
        "changes in domainflow: the DNS records stay as they are."
    )
    why = f"Why: {clean(event.reason)}" if clean(event.reason) else ""
    quiet = "You get this mail once for this expiry date."
    text = [body, "", todo]
    if why:
        text += ["", why]
    text += ["", quiet]
    if dashboard_url:
        text += ["", f"See the domain: {clean(dashboard_url)}"]
    text += ["", f"Domain ID: {clean(event.domain_id, 100)}"]
    e = html.escape
    parts = [f"<p>{e(body)}</p>", f"<p><strong>What to do:</strong> {e(todo)}</p>"]
    if why:
        parts.append(f"<p>{e(why)}</p>")
    parts.append(f"<p><small>{e(quiet)}</small></p>")
    parts += _html_footer(event, dashboard_url)
    return Email(subject=subject, text="\n".join(text) + "\n", html=_page(subject, parts))


def _html_footer(event: NotificationRequested, dashboard_url: str | None) -> list[str]:
    e = html.escape
    parts: list[str] = []
    if dashboard_url:
        url = clean(dashboard_url)
        parts.append(f'<p><a href="{e(url, quote=True)}">See the domain</a></p>')
    parts.append(f"<p><small>Domain ID: {e(clean(event.domain_id, 100))}</small></p>")
    return parts


def _page(title: str, parts: list[str]) -> str:
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family: sans-serif; line-height: 1.4">'
        + "".join(parts)
        + "</body></html>"
    )
