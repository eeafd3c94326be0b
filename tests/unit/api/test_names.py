"""normalize_domain: every way a name can be wrong has its own code; valid names round-trip."""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from domainflow.api.domain.names import (
    MAX_LABEL_OCTETS,
    MAX_NAME_OCTETS,
    REASON_CODES,
    DomainNameInvalid,
    display_name,
    mixed_scripts,
    normalize_domain,
    registrable,
    special_use,
)

LDH = string.ascii_lowercase + string.digits


@st.composite
def labels(draw: st.DrawFn, max_size: int = MAX_LABEL_OCTETS) -> str:
    """An LDH label: letters and digits, with hyphens only inside."""
    size = draw(st.integers(min_value=1, max_value=max_size))
    if size == 1:
        return draw(st.sampled_from(LDH))
    inner = draw(st.text(alphabet=LDH + "-", min_size=size - 2, max_size=size - 2))
    return draw(st.sampled_from(LDH)) + inner + draw(st.sampled_from(LDH))


@st.composite
def hostnames(draw: st.DrawFn) -> str:
    """A registrable-looking hostname under a fixed set of top-level domains."""
    front = draw(st.lists(labels(), min_size=1, max_size=3))
    registrable = draw(labels(max_size=20).filter(lambda label: len(label) >= 6))
    tld = draw(st.sampled_from(["com", "net", "org", "io", "example", "test"]))
    name = ".".join([*front, registrable, tld])
    assume(len(name) <= MAX_NAME_OCTETS)
    return name


def attempt(raw: object) -> tuple[str | None, DomainNameInvalid | None]:
    try:
        return normalize_domain(raw), None
    except DomainNameInvalid as exc:
        return None, exc


def code_of(raw: object) -> str:
    with pytest.raises(DomainNameInvalid) as caught:
        normalize_domain(raw)
    assert caught.value.message
    assert caught.value.code in REASON_CODES
    return caught.value.code


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (None, "domain_missing"),
        ("", "domain_missing"),
        ("   ", "domain_missing"),
        ("\t\n", "domain_missing"),
        (42, "domain_not_string"),
        (["acme.com"], "domain_not_string"),
        (b"acme.com", "domain_not_string"),
        (" acme.com", "domain_has_whitespace"),
        ("acme .com", "domain_has_whitespace"),
        ("https://acme.com", "domain_has_scheme"),
        ("http://acme.com/", "domain_has_scheme"),
        ("ftp://acme.com", "domain_has_scheme"),
        ("//acme.com", "domain_has_scheme"),
        ("acme.com/login", "domain_has_path"),
        ("acme.com/a/", "domain_has_path"),
        ("acme.com?q=1", "domain_has_path"),
        ("acme.com#top", "domain_has_path"),
        ("acme.com\\x", "domain_has_path"),
        ("acme.com/", "domain_trailing_slash"),
        ("bob@acme.com", "domain_is_email_address"),
        ("acme.com:443", "domain_has_port"),
        ("acme.com:", "domain_has_port"),
        ("acme.com.", "domain_trailing_dot"),
        ("acme.com..", "domain_trailing_dot"),
        ("Acme.com", "domain_uppercase"),
        ("MAIL.ACME.COM", "domain_uppercase"),
        ("BÜCHER.example", "domain_uppercase"),
        ("*.acme.com", "domain_wildcard"),
        ("mail.*.com", "domain_wildcard"),
        ("192.0.2.1", "domain_is_ip_address"),
        ("192.0.2.1:25", "domain_is_ip_address"),
        ("10.1", "domain_is_ip_address"),
        ("2001:db8::1", "domain_is_ip_address"),
        ("::1", "domain_is_ip_address"),
        ("[2001:db8::1]", "domain_is_ip_address"),
        ("[2001:db8::1]:443", "domain_is_ip_address"),
        ("acme.123", "domain_is_ip_address"),
        ("a" * 64 + ".com", "label_too_long"),
        ("ü" * 60 + ".com", "label_too_long"),  # short in Unicode, 60+ octets as an A-label
        (".".join(["a" * 63] * 4) + ".com", "domain_too_long"),
        ("a." * 1000 + "com", "domain_too_long"),
        ("co.uk", "domain_is_public_suffix"),
        ("github.io", "domain_is_public_suffix"),
        ("blogspot.com", "domain_is_public_suffix"),
        ("localhost", "domain_single_label"),
        ("com", "domain_single_label"),
        ("中国", "domain_single_label"),
        ("acme..com", "domain_empty_label"),
        (".acme.com", "domain_empty_label"),
        ("a_b.acme.com", "domain_invalid_characters"),
        ("_dmarc.acme.com", "domain_invalid_characters"),
        ("ac!me.com", "domain_invalid_characters"),
        ("ac%me.com", "domain_invalid_characters"),
        ("-acme.com", "label_bad_hyphen"),
        ("acme-.com", "label_bad_hyphen"),
        ("xn--abc.com", "domain_idna_invalid"),
        ("xn--a.com", "domain_idna_invalid"),
        ("a\u200db.com", "domain_idna_invalid"),  # ZWJ outside its allowed context
        ("\u0661.com", "domain_idna_invalid"),  # Arabic-Indic digit alone breaks the bidi rule
        ("☃.com", "domain_idna_invalid"),  # symbols are not allowed by IDNA 2008
    ],
)
def test_every_bad_input_has_its_own_code(raw: object, code: str) -> None:
    assert code_of(raw) == code


@pytest.mark.parametrize(
    ("raw", "suggestion"),
    [
        ("https://mail.acme.com", '"mail.acme.com", without "https://"'),
        ("HTTPS://Mail.Acme.com/path", '"mail.acme.com"'),
        ("acme.com/", '"acme.com"'),
        ("acme.com:8080", '"acme.com"'),
        ("Mail.Acme.com", '"mail.acme.com"'),
        ("mail.acme.com.", '"mail.acme.com"'),
        ("*.acme.com", '"acme.com"'),
        ("bob@acme.com", '"acme.com"'),
        (" acme.com ", '"acme.com"'),
        ("BÜCHER.example", '"bücher.example"'),
    ],
)
def test_messages_quote_what_to_send_instead(raw: str, suggestion: str) -> None:
    with pytest.raises(DomainNameInvalid) as caught:
        normalize_domain(raw)
    assert suggestion in caught.value.message


def test_scheme_message_reads_as_the_seed_wants() -> None:
    with pytest.raises(DomainNameInvalid) as caught:
        normalize_domain("https://mail.acme.com")
    assert caught.value.message == 'Send the hostname only: "mail.acme.com", without "https://".'


def test_no_suggestion_when_the_cleaned_name_is_still_bad() -> None:
    with pytest.raises(DomainNameInvalid) as caught:
        normalize_domain("https://co.uk")
    assert '"co.uk"' not in caught.value.message


@pytest.mark.parametrize(
    ("raw", "ascii_name"),
    [
        ("mail.acme.com", "mail.acme.com"),
        ("acme.co.uk", "acme.co.uk"),
        ("pages.acme.github.io", "pages.acme.github.io"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("bu\u0308cher.example", "xn--bcher-kva.example"),  # NFD, as some keyboards type it
        ("straße.example", "xn--strae-oqa.example"),  # IDNA 2008 keeps ß (not transitional)
        ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
        ("ab--cd.example.com", "ab--cd.example.com"),
        ("123.example.com", "123.example.com"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
    ],
)
def test_valid_names(raw: str, ascii_name: str) -> None:
    assert normalize_domain(raw) == ascii_name


def test_a_name_of_exactly_253_octets_is_accepted() -> None:
    name = ".".join(["a" * 63] * 3 + ["b" * 57, "com"])
    assert len(name) == MAX_NAME_OCTETS
    assert normalize_domain(name) == name
    longer = ".".join(["a" * 63] * 3 + ["b" * 58, "com"])
    assert code_of(longer) == "domain_too_long"


def test_display_name_gives_the_unicode_form() -> None:
    assert display_name("xn--bcher-kva.example") == "bücher.example"
    assert display_name("mail.acme.com") == "mail.acme.com"
    assert display_name("xn--abc.com") == "xn--abc.com"  # undecodable: shown as it is


@given(hostnames())
def test_valid_hostnames_round_trip(name: str) -> None:
    assert normalize_domain(name) == name
    assert display_name(name) == name


@given(hostnames(), st.data())
def test_uppercase_variants_are_always_rejected_as_uppercase(
    name: str, data: st.DataObject
) -> None:
    letters = [i for i, ch in enumerate(name) if ch.isalpha()]
    chosen = data.draw(st.sets(st.sampled_from(letters), min_size=1))
    shouted = "".join(ch.upper() if i in chosen else ch for i, ch in enumerate(name))
    with pytest.raises(DomainNameInvalid) as caught:
        normalize_domain(shouted)
    assert caught.value.code == "domain_uppercase"
    assert f'"{name}"' in caught.value.message


@given(hostnames())
def test_trailing_dot_variants_are_always_rejected(name: str) -> None:
    with pytest.raises(DomainNameInvalid) as caught:
        normalize_domain(name + ".")
    assert caught.value.code == "domain_trailing_dot"
    assert f'"{name}"' in caught.value.message


UNICODE_LETTERS = "äöüéèßçñøåžšłαβγжщ"


@given(
    st.lists(
        st.text(alphabet=string.ascii_lowercase + UNICODE_LETTERS, min_size=1, max_size=12),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from(["com", "example"]),
)
@example(["bücher"], "example")
def test_unicode_names_become_a_labels_and_display_back(front: list[str], tld: str) -> None:
    raw = ".".join([*front, "registrable", tld])
    ascii_name, refused = attempt(raw)
    if refused is not None:
        # IDNA 2008 refuses some mixes of scripts inside one label, UTS #39 the rest (Latin
        # with Greek or Cyrillic): each is its own reason, and only a mixed label meets them.
        assert refused.code in ("domain_idna_invalid", "domain_mixed_script")
        assert any(mixed_scripts(label) for label in front) or refused.code == "domain_idna_invalid"
        return
    assert not any(mixed_scripts(label) for label in front)
    assert ascii_name is not None
    assert ascii_name.isascii()
    assert display_name(ascii_name) == raw
    assert normalize_domain(ascii_name) == ascii_name


@given(st.one_of(st.text(), st.text(alphabet=LDH + ".-_:/*@ ÄäA", max_size=80)))
def test_any_text_is_either_a_hostname_or_a_coded_refusal(raw: str) -> None:
    name, refused = attempt(raw)
    if refused is not None:
        assert refused.code in REASON_CODES
        assert refused.message
        return
    assert name is not None
    assert name.isascii()
    assert name == name.lower()
    assert len(name) <= MAX_NAME_OCTETS
    parts = name.split(".")
    assert len(parts) >= 2
    for part in parts:
        assert 1 <= len(part) <= MAX_LABEL_OCTETS
        assert set(part) <= set(LDH + "-")
        assert not part.startswith("-")
        assert not part.endswith("-")
    assert normalize_domain(name) == name


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("ｂücher.example", '"bücher.example"'),  # fullwidth letters fold into ASCII
        ("bücher。example", '"bücher.example"'),  # ideographic full stops into dots
        ("bü\u00adcher.example", '"bücher.example"'),  # a soft hyphen vanishes
    ],
)
def test_characters_idna_would_change_are_refused_with_the_name_they_make(
    raw: str, shown: str
) -> None:
    with pytest.raises(DomainNameInvalid) as caught:
        normalize_domain(raw)
    assert caught.value.code == "domain_idna_mapped"
    assert shown in caught.value.message


@pytest.mark.parametrize(
    "raw",
    [
        "g\u043e\u043egle.com",  # Cyrillic o's among Latin letters
        "xn--ggle-55da.com",  # the same, sent as its A-label
        "p\u0430ypal.com",  # one Cyrillic a
        "\u03b1pple.com",  # a Greek alpha
    ],
)
def test_labels_that_mix_scripts_are_refused(raw: str) -> None:
    with pytest.raises(DomainNameInvalid) as caught:
        normalize_domain(raw)
    assert caught.value.code == "domain_mixed_script"


@pytest.mark.parametrize(
    "raw", ["例え.テスト", "東京タワー.jp", "bücher.example", "한국어.kr", "москва.рф", "abc.com"]
)
def test_one_script_or_cjk_with_latin_is_fine(raw: str) -> None:
    assert normalize_domain(raw)


@pytest.mark.parametrize(
    ("name", "under"),
    [
        ("mail.localhost", "localhost"),
        ("printer.local", "local"),
        ("x.onion", "onion"),
        ("1.0.0.127.in-addr.arpa", "arpa"),
        ("router.home.arpa", "home.arpa"),
        ("acme.test", "test"),
        ("mail.example.com", "example.com"),
        ("a.internal", "internal"),
    ],
)
def test_special_use_names(name: str, under: str) -> None:
    assert special_use(name) == under
    assert special_use(name, frozenset({under})) in (None, "arpa")
    assert special_use("mail.acme.com") is None


def test_registrable_names_follow_the_public_suffix_list() -> None:
    assert registrable("mail.sendmux.ai") == "sendmux.ai"
    assert registrable("a.b.acme.co.uk") == "acme.co.uk"
    assert registrable("myagent.mx") == "myagent.mx"
