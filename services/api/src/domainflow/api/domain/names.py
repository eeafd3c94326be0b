"""Domain names as customers send them: checked, explained when wrong, and turned into A-labels.

Pure: no I/O. The public suffix list is the copy bundled with `publicsuffixlist`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from typing import Final

import idna
from confusable_homoglyphs import categories
from publicsuffixlist import PublicSuffixList

MAX_NAME_OCTETS: Final = 253  # RFC 1035, without the root's trailing dot
MAX_LABEL_OCTETS: Final = 63
# Far above any real name; stops megabyte inputs before IDNA mapping looks at them.
_MAX_INPUT_CHARS: Final = 1024

_SCHEME = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:)?//")
_LDH_LABEL = re.compile(r"[a-z0-9-]+")
_DIGITS_AND_DOTS = re.compile(r"[0-9.]+")
_EXAMPLE: Final = "mail.acme.com"

# Every machine code `DomainNameInvalid.code` can carry; stable, so clients may branch on them.
REASON_CODES: Final = frozenset(
    {
        "domain_not_string",
        "domain_missing",
        "domain_has_whitespace",
        "domain_has_scheme",
        "domain_has_path",
        "domain_trailing_slash",
        "domain_is_email_address",
        "domain_has_port",
        "domain_is_ip_address",
        "domain_wildcard",
        "domain_trailing_dot",
        "domain_uppercase",
        "domain_empty_label",
        "domain_invalid_characters",
        "label_bad_hyphen",
        "domain_idna_invalid",
        "label_too_long",
        "domain_too_long",
        "domain_single_label",
        "domain_is_public_suffix",
        "domain_idna_mapped",
        "domain_mixed_script",
        "domain_special_use",
        "domain_reserved",
    }
)

#: Names set aside for special use (RFC 6761, 6762, 7686, 8375, 9476; ICANN's .internal):
#: nobody registers them, so nobody can own a domain beneath them.
SPECIAL_USE: Final = frozenset(
    {
        "localhost",
        "local",
        "onion",
        "test",
        "invalid",
        "example",
        "example.com",
        "example.net",
        "example.org",
        "arpa",
        "home.arpa",
        "alt",
        "internal",
    }
)

# UTS #39's "highly restrictive" level: one script per label, or Latin with the scripts
# Chinese, Japanese and Korean are written in together.
_SCRIPT_SETS: Final = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
_NO_SCRIPT: Final = frozenset({"COMMON", "INHERITED"})


class DomainNameInvalid(Exception):  # noqa: N818 - the domain's word for it; callers read `code`
    """A name the API cannot accept, with a machine `code` and a `message` a person can act on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"DomainNameInvalid({self.code!r}, {self.message!r})"


def normalize_domain(raw: object) -> str:
    """Return the ASCII (A-label) form of a hostname, or raise `DomainNameInvalid` saying why not.

    Strict on purpose: the seed's contract is "lowercase, hostname only", and a name we silently
    repaired would differ from the one the customer later reads in their DNS provider.
    Unicode names are accepted and mapped with UTS #46 then IDNA 2008 (`bücher.example` becomes
    `xn--bcher-kva.example`).
    """
    return _normalize(raw, suggest=True)


def under(name: str, parent: str) -> bool:
    """Whether `name` is `parent` or a name beneath it (both normalized)."""
    return name == parent or name.endswith("." + parent)


def special_use(ascii_name: str, allowed: frozenset[str] = frozenset()) -> str | None:
    """The special-use name `ascii_name` lies under (unless the deployment allows it)."""
    labels = ascii_name.split(".")
    for start in range(len(labels)):
        suffix = ".".join(labels[start:])
        if suffix in SPECIAL_USE and suffix not in allowed:
            return suffix
    return None


def registrable(ascii_name: str) -> str:
    """The name a registrant holds (`sendmux.ai` for `mail.sendmux.ai`), by the public
    suffix list; the name itself where the list has no answer."""
    return _suffix_list().privatesuffix(ascii_name) or ascii_name


def mixed_scripts(label: str) -> frozenset[str] | None:
    """The scripts of a Unicode label when they mix in a way UTS #39 does not allow."""
    scripts = frozenset(categories.unique_aliases(label)) - _NO_SCRIPT
    if len(scripts) <= 1 or any(scripts <= allowed for allowed in _SCRIPT_SETS):
        return None
    return scripts


def display_name(ascii_name: str) -> str:
    """The U-label form of a normalized name, for people; the name itself if it will not decode."""
    if "xn--" not in ascii_name:
        return ascii_name  # no A-label: it reads the same either way (and every read shows it)
    try:
        return idna.decode(ascii_name)
    except (idna.IDNAError, UnicodeError):
        return ascii_name


def _normalize(raw: object, *, suggest: bool) -> str:
    text = _require_text(raw, suggest=suggest)
    _reject_url_parts(text, suggest=suggest)
    if "*" in text:
        hint = (_suggestion(text) if suggest else None) or _EXAMPLE
        raise DomainNameInvalid(
            "domain_wildcard",
            f'Wildcards are not supported; send one hostname, such as "{hint}", and add each '
            "further hostname separately.",
        )
    if text.endswith("."):
        raise DomainNameInvalid(
            "domain_trailing_dot",
            "Send the name without the trailing dot"
            + _colon_suggestion(text, suggest=suggest)
            + ".",
        )
    if text != text.lower():
        raise DomainNameInvalid(
            "domain_uppercase",
            "Send the name in lowercase" + _colon_suggestion(text, suggest=suggest) + ".",
        )
    ascii_name = _to_ascii(text)
    _check_lengths(ascii_name)
    labels = ascii_name.split(".")
    if len(labels) == 1:
        raise DomainNameInvalid(
            "domain_single_label",
            f'"{display_name(ascii_name)}" has a single label; send a fully qualified hostname '
            f'such as "{_EXAMPLE}".',
        )
    if labels[-1].isdigit():
        raise DomainNameInvalid(
            "domain_is_ip_address",
            f'"{ascii_name}" ends in a number, so it reads as an IP address; send a hostname such '
            f'as "{_EXAMPLE}".',
        )
    if _is_public_suffix(ascii_name):
        raise DomainNameInvalid(
            "domain_is_public_suffix",
            f'"{display_name(ascii_name)}" is a public suffix that anyone can register names '
            f'under; send a name you own beneath it, such as "acme.{display_name(ascii_name)}".',
        )
    return ascii_name


def _require_text(raw: object, *, suggest: bool) -> str:
    if raw is None:
        raise DomainNameInvalid("domain_missing", f'Send a domain, such as "{_EXAMPLE}".')
    if not isinstance(raw, str):
        raise DomainNameInvalid(
            "domain_not_string",
            f'The domain must be a JSON string, such as "{_EXAMPLE}", not {type(raw).__name__}.',
        )
    if not raw.strip():
        raise DomainNameInvalid("domain_missing", f'Send a domain, such as "{_EXAMPLE}".')
    if len(raw) > _MAX_INPUT_CHARS:
        raise DomainNameInvalid(
            "domain_too_long",
            f"A domain name is at most {MAX_NAME_OCTETS} characters; this one is {len(raw)}.",
        )
    if any(ch.isspace() for ch in raw):
        where = "inside" if len(raw.split()) > 1 else "around"
        raise DomainNameInvalid(
            "domain_has_whitespace",
            f"Remove the spaces {where} the name" + _colon_suggestion(raw, suggest=suggest) + ".",
        )
    return raw


def _reject_url_parts(text: str, *, suggest: bool) -> None:
    """Reject the parts of a URL or address that people paste around a hostname."""
    scheme = _SCHEME.match(text)
    if scheme:
        hint = _suggestion(text) if suggest else None
        raise DomainNameInvalid(
            "domain_has_scheme",
            (f'Send the hostname only: "{hint}", ' if hint else "Send the hostname only, ")
            + f'without "{scheme.group(0)}".',
        )
    if "@" in text:
        hint = _suggestion(text) if suggest else None
        raise DomainNameInvalid(
            "domain_is_email_address",
            "That looks like an email address; send only the part after the @"
            + (f': "{hint}".' if hint else "."),
        )
    if any(ch in text for ch in "/?#\\"):
        if text.endswith("/") and text.count("/") == 1 and not any(ch in text for ch in "?#\\"):
            raise DomainNameInvalid(
                "domain_trailing_slash",
                "Send the name without the trailing slash"
                + _colon_suggestion(text, suggest=suggest)
                + ".",
            )
        raise DomainNameInvalid(
            "domain_has_path",
            "Send the hostname only, without a path, query or fragment"
            + _colon_suggestion(text, suggest=suggest)
            + ".",
        )
    if _is_ip_address(text):
        raise DomainNameInvalid(
            "domain_is_ip_address",
            f'"{text}" is an IP address; send the hostname that mail is sent from, such as '
            f'"{_EXAMPLE}".',
        )
    if ":" in text:
        raise DomainNameInvalid(
            "domain_has_port",
            "Send the hostname without a port" + _colon_suggestion(text, suggest=suggest) + ".",
        )


def _is_ip_address(text: str) -> bool:
    candidate = text
    if candidate.startswith("["):
        # "[2001:db8::1]" or "[2001:db8::1]:443": an IPv6 literal however it ends.
        return True
    if candidate.count(":") >= 2:
        candidate = candidate.split("%", 1)[0]
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            return False
        return True
    candidate = candidate.split(":", 1)[0]
    # Dotted digits in any count ("10.1", "1.2.3.4") are addresses to resolvers (inet_aton).
    return bool(_DIGITS_AND_DOTS.fullmatch(candidate)) and any(ch.isdigit() for ch in candidate)


def _to_ascii(text: str) -> str:
    mapped = text
    if not text.isascii():
        try:
            mapped = idna.uts46_remap(text, std3_rules=True)
        except idna.IDNAError as exc:
            raise DomainNameInvalid(
                "domain_idna_invalid",
                f'"{text}" is not a valid internationalized domain name ({exc}); '
                "check for symbols or mixed scripts, or send its xn-- form.",
            ) from exc
        if mapped != unicodedata.normalize("NFC", text):  # NFD as some keyboards type it: fine
            # Fullwidth letters, ideographic full stops, zero-width characters: IDNA folds
            # them into another name, which is not the one the customer will see in DNS.
            raise DomainNameInvalid(
                "domain_idna_mapped",
                f'"{text}" holds characters that IDNA changes (fullwidth forms, ideographic '
                f'full stops, invisible characters); send the name as it will be: "{mapped}".',
            )
        if mapped.endswith("."):
            raise DomainNameInvalid(
                "domain_trailing_dot",
                "Send the name without the trailing dot"
                + _colon_suggestion(mapped.rstrip("."), suggest=True)
                + ".",
            )
    return ".".join(_label_to_ascii(label, mapped) for label in mapped.split("."))


def _label_to_ascii(label: str, name: str) -> str:
    if not label:
        raise DomainNameInvalid(
            "domain_empty_label",
            f'"{name}" has an empty label (a leading dot or two dots in a row); '
            'send labels separated by single dots, as in "mail.acme.com".',
        )
    if not label.isascii():
        try:
            idna.check_label(label)
        except idna.IDNAError as exc:
            raise DomainNameInvalid(
                "domain_idna_invalid",
                f'The label "{label}" is not valid in an internationalized domain name ({exc}).',
            ) from exc
        _refuse_mixed_scripts(label)
        return "xn--" + label.encode("punycode").decode("ascii")
    if "_" in label:
        raise DomainNameInvalid(
            "domain_invalid_characters",
            f'The label "{label}" contains "_"; hostnames use letters, digits and hyphens only '
            '(underscore names such as "_dmarc" are records we give you, not domains to add).',
        )
    if not _LDH_LABEL.fullmatch(label):
        bad = next(ch for ch in label if not (ch.isalnum() or ch == "-"))
        raise DomainNameInvalid(
            "domain_invalid_characters",
            f'The label "{label}" contains "{bad}"; hostnames use letters, digits and '
            "hyphens only.",
        )
    if label.startswith("-") or label.endswith("-"):
        raise DomainNameInvalid(
            "label_bad_hyphen",
            f'The label "{label}" starts or ends with a hyphen; a hostname label may only '
            "have hyphens inside it.",
        )
    if label.startswith("xn--"):
        try:
            unicode_label = idna.ulabel(label)
        except idna.IDNAError as exc:
            raise DomainNameInvalid(
                "domain_idna_invalid",
                f'The label "{label}" is not a valid xn-- (punycode) label ({exc}); send the '
                "name in its Unicode form and we will encode it.",
            ) from exc
        _refuse_mixed_scripts(unicode_label)
    return label


def _refuse_mixed_scripts(label: str) -> None:
    scripts = mixed_scripts(label)
    if scripts is not None:
        raise DomainNameInvalid(
            "domain_mixed_script",
            f'The label "{label}" mixes the {" and ".join(sorted(s.title() for s in scripts))} '
            "scripts, as look-alike names do (UTS #39); write each label in one script.",
        )


def _check_lengths(ascii_name: str) -> None:
    for label in ascii_name.split("."):
        if len(label) > MAX_LABEL_OCTETS:
            raise DomainNameInvalid(
                "label_too_long",
                f'The label "{label[:20]}..." is {len(label)} characters (in its ASCII form); '
                f"each label is at most {MAX_LABEL_OCTETS}.",
            )
    if len(ascii_name) > MAX_NAME_OCTETS:
        raise DomainNameInvalid(
            "domain_too_long",
            f"The name is {len(ascii_name)} characters in its ASCII form; a domain name is at "
            f"most {MAX_NAME_OCTETS}.",
        )


@functools.cache
def _suffix_list() -> PublicSuffixList:
    # Includes the private section (github.io, blogspot.com): a customer cannot own those either.
    return PublicSuffixList()


def _is_public_suffix(ascii_name: str) -> bool:
    return bool(_suffix_list().is_public(ascii_name))


def _colon_suggestion(text: str, *, suggest: bool) -> str:
    """': "X"' when a cleaned-up form of `text` is a valid name, else ''."""
    candidate = _suggestion(text) if suggest else None
    return f': "{candidate}"' if candidate else ""


def _suggestion(text: str) -> str | None:
    """The name the customer most likely meant, in the form they wrote it, if it is valid."""
    candidate = text.strip()
    candidate = _SCHEME.sub("", candidate)
    candidate = candidate.rsplit("@", 1)[-1]
    candidate = re.split(r"[/?#\\]", candidate, maxsplit=1)[0]
    candidate = re.sub(r":[0-9]*$", "", candidate)
    candidate = "".join(candidate.split()).lstrip("*.").rstrip(".").lower()
    if not candidate:
        return None
    try:
        _normalize(candidate, suggest=False)
    except DomainNameInvalid:
        return None
    return candidate
