"""Derived DNS records match seed 001 exactly; the BIND fragment parses and holds every record."""

from __future__ import annotations

import re
import string

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domainflow.api.domain.names import DomainNameInvalid, normalize_domain
from domainflow.api.domain.records import (
    RecordSettings,
    derive_records,
    mail_from_domain_for,
    to_bind,
)
from domainflow.contracts.events import DnsRecords

TOKENS = ["token1", "token2", "token3"]


def seed_records(mail_from: str | None = None) -> DnsRecords:
    return derive_records(
        "mail.acme.com", "team_abc123", TOKENS, "us-east-1", RecordSettings(), mail_from
    )


def test_records_are_exactly_seed_001() -> None:
    records = seed_records()
    assert records.model_dump(exclude={"mx"}) == {
        "spf": {
            "name": "mail.acme.com",
            "value": "v=spf1 include:amazonses.com include:sendmux.ai ~all",
        },
        "dmarc": {"name": "_dmarc.mail.acme.com", "value": "v=DMARC1; p=quarantine"},
        "dkim": [
            {"name": "token1._domainkey.mail.acme.com", "value": "token1.dkim.amazonses.com"},
            {"name": "token2._domainkey.mail.acme.com", "value": "token2.dkim.amazonses.com"},
            {"name": "token3._domainkey.mail.acme.com", "value": "token3.dkim.amazonses.com"},
        ],
        "verification": {"name": "_sendmux.mail.acme.com", "value": "sendmux-verify=team_abc123"},
        "mail_from": None,
    }
    [mx] = records.mx
    assert (mx.name, mx.priority, mx.target) == ("mail.acme.com", 10, "mail.sendmux.ai")


def test_operator_settings_change_the_records() -> None:
    settings = RecordSettings(
        mx_target="mx.sendmailos.com",
        mx_priority=5,
        spf_includes=("amazonses.com",),
        spf_qualifier="-all",
        dmarc_policy="reject",
        verification_prefix="_sendmailos",
        verification_value_prefix="sendmailos-verification=",
    )
    records = derive_records("acme.com", "t1", [], "eu-west-1", settings)
    assert records.mx[0].target == "mx.sendmailos.com"
    assert records.mx[0].priority == 5
    assert records.spf.value == "v=spf1 include:amazonses.com -all"
    assert records.dmarc.value == "v=DMARC1; p=reject"
    assert records.verification.name == "_sendmailos.acme.com"
    assert records.verification.value == "sendmailos-verification=t1"
    assert records.dkim == []


@pytest.mark.parametrize(
    "changes",
    [
        {"spf_qualifier": "+all"},
        {"dmarc_policy": "quarantine; rua=x"},
        {"mx_priority": 70000},
        {"mail_from_mx_priority": -1},
        {"mail_from_mx_target": "feedback-smtp.amazonses.com"},
        {"verification_prefix": "sendmux"},
        {"verification_prefix": "_a.b"},
        {"spf_includes": ()},
    ],
)
def test_bad_operator_settings_are_refused_at_start(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        RecordSettings(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("domain", "team", "tokens", "region"),
    [
        ("Mail.acme.com", "team_abc", TOKENS, "us-east-1"),
        ("mail.acme.com.", "team_abc", TOKENS, "us-east-1"),
        ("mail.acme.com", "team abc", TOKENS, "us-east-1"),
        ("mail.acme.com", '"x"', TOKENS, "us-east-1"),
        ("mail.acme.com", "team_abc", ["bad.token"], "us-east-1"),
        ("mail.acme.com", "team_abc", ["-x"], "us-east-1"),
        ("mail.acme.com", "team_abc", TOKENS, "us east 1"),
        ("mail.acme.com", "team_abc", TOKENS, "us-east-1.evil.com"),
    ],
)
def test_inputs_that_would_corrupt_a_record_raise(
    domain: str, team: str, tokens: list[str], region: str
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        derive_records(domain, team, tokens, region)


def test_mail_from_records_follow_seed_003() -> None:
    mail_from = mail_from_domain_for("mail.acme.com", "bounce")
    assert mail_from == "bounce.mail.acme.com"
    records = seed_records(mail_from)
    assert records.mail_from is not None
    assert records.mail_from.mx.name == "bounce.mail.acme.com"
    assert records.mail_from.mx.priority == 10
    assert records.mail_from.mx.target == "feedback-smtp.us-east-1.amazonses.com"
    assert records.mail_from.spf.name == "bounce.mail.acme.com"
    assert records.mail_from.spf.value == "v=spf1 include:amazonses.com ~all"


def test_mail_from_outside_the_domain_is_a_bug() -> None:
    with pytest.raises(ValueError, match="subdomain"):
        seed_records("bounce.other.com")


@pytest.mark.parametrize(
    ("label", "hint"),
    [
        (None, '"bounce"'),
        (7, '"bounce"'),
        ("", '"bounce"'),
        ("  ", '"bounce"'),
        (" bounce", '"bounce"'),
        ("Bounce", '"bounce"'),
        ("bounce.mail.acme.com", 'Send "bounce"'),
        ("a.b", "one label"),
        ("-bounce", "hyphens"),
        ("bounce-", "hyphens"),
        ("bo_unce", "hyphens"),
        ("bö", "hyphens"),
        ("b" * 64, "63"),
        ("www", "CNAME"),
    ],
)
def test_bad_mail_from_labels(label: object, hint: str) -> None:
    with pytest.raises(DomainNameInvalid) as caught:
        mail_from_domain_for("mail.acme.com", label)
    assert caught.value.code == "mail_from_invalid"
    assert hint in caught.value.message


def test_mail_from_that_makes_the_name_too_long() -> None:
    domain = ".".join(["a" * 63] * 3 + ["b" * 50, "com"])
    assert mail_from_domain_for(domain, "bounce") == "bounce." + domain  # exactly 253
    with pytest.raises(DomainNameInvalid) as caught:
        mail_from_domain_for(domain, "bounces")
    assert caught.value.code == "mail_from_invalid"
    assert "at most 253" in caught.value.message


LDH = string.ascii_lowercase + string.digits
label_st = st.text(alphabet=LDH, min_size=1, max_size=20)
domain_st = st.builds(
    lambda front, reg, tld: f"{'.'.join(front)}.{reg}.{tld}",
    st.lists(label_st, min_size=0, max_size=2),
    st.text(alphabet=string.ascii_lowercase, min_size=6, max_size=20),
    st.sampled_from(["com", "net", "example"]),
).map(lambda name: name.lstrip("."))
token_st = st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567", min_size=32, max_size=32)
team_st = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=64)
region_st = st.sampled_from(["us-east-1", "eu-west-2", "ap-southeast-2", "us-gov-west-1"])


@given(
    domain_st,
    team_st,
    st.lists(token_st, max_size=3),
    region_st,
    st.one_of(st.none(), label_st),
)
def test_derived_records_always_name_the_domain(
    domain: str, team: str, tokens: list[str], region: str, mail_from_label: str | None
) -> None:
    assert normalize_domain(domain) == domain
    mail_from = mail_from_domain_for(domain, mail_from_label) if mail_from_label else None
    records = derive_records(domain, team, tokens, region, mail_from_domain=mail_from)
    names = [
        *(mx.name for mx in records.mx),
        records.spf.name,
        records.dmarc.name,
        *(d.name for d in records.dkim),
        records.verification.name,
    ]
    if records.mail_from is not None:
        names += [records.mail_from.mx.name, records.mail_from.spf.name]
        assert region in records.mail_from.mx.target
    for name in names:
        assert name == domain or name.endswith("." + domain)
    assert len(records.dkim) == len(tokens)
    assert records.verification.value.endswith(team)


def parse(text: str, domain: str) -> dns.zone.Zone:
    return dns.zone.from_text(text, origin=domain + ".", relativize=False, check_origin=False)


def txt_values(zone: dns.zone.Zone, name: str) -> set[bytes]:
    rdataset = zone.find_rdataset(dns.name.from_text(name + "."), dns.rdatatype.TXT)
    return {b"".join(rdata.strings) for rdata in rdataset}


def assert_zone_holds(zone: dns.zone.Zone, records: DnsRecords, ttl: int) -> None:
    def rdataset(name: str, rtype: dns.rdatatype.RdataType) -> dns.rdataset.Rdataset:
        found = zone.find_rdataset(dns.name.from_text(name + "."), rtype)
        assert found.ttl == ttl
        assert found.rdclass == dns.rdataclass.IN
        return found

    mxs = {
        (r.preference, r.exchange.to_text()) for r in rdataset(records.mx[0].name, dns.rdatatype.MX)
    }
    assert mxs == {(mx.priority, mx.target + ".") for mx in records.mx}
    for txt in (records.spf, records.dmarc, records.verification):
        rdataset(txt.name, dns.rdatatype.TXT)
        assert txt.value.encode() in txt_values(zone, txt.name)
    for dkim in records.dkim:
        [cname] = rdataset(dkim.name, dns.rdatatype.CNAME)
        assert cname.target.to_text() == dkim.value + "."
    expected_names = {records.spf.name, records.dmarc.name, records.verification.name}
    expected_names |= {d.name for d in records.dkim}
    if records.mail_from is not None:
        mx = records.mail_from.mx
        [found_mx] = rdataset(mx.name, dns.rdatatype.MX)
        assert (found_mx.preference, found_mx.exchange.to_text()) == (mx.priority, mx.target + ".")
        assert records.mail_from.spf.value.encode() in txt_values(zone, mx.name)
        expected_names.add(mx.name)
    assert {n.to_text().rstrip(".") for n in zone.nodes} == expected_names


def test_bind_fragment_of_the_seed_records() -> None:
    records = seed_records(mail_from_domain_for("mail.acme.com", "bounce"))
    text = to_bind(records)
    assert text.startswith("; DNS records for mail.acme.com")
    assert re.search(r"^mail\.acme\.com\. +300 IN MX +10 mail\.sendmux\.ai\.$", text, re.M)
    assert re.search(
        r'^mail\.acme\.com\. +300 IN TXT +"v=spf1 include:amazonses.com include:sendmux.ai ~all"$',
        text,
        re.M,
    )
    assert re.search(
        r"^token1\._domainkey\.mail\.acme\.com\. +300 IN CNAME token1\.dkim\.amazonses\.com\.$",
        text,
        re.M,
    )
    assert text.isascii()
    assert_zone_holds(parse(text, "mail.acme.com"), records, 300)


def test_long_txt_values_split_into_255_octet_strings() -> None:
    includes = tuple(f"spf{i}.example-relay-provider.com" for i in range(20))
    records = derive_records(
        "acme.com", "team_x", [], "us-east-1", RecordSettings(spf_includes=includes)
    )
    assert len(records.spf.value) > 600
    zone = parse(to_bind(records), "acme.com")
    [rdata] = zone.find_rdataset("acme.com.", dns.rdatatype.TXT)
    size = len(records.spf.value)
    assert [len(s) for s in rdata.strings] == [255] * (size // 255) + [size % 255]
    assert b"".join(rdata.strings) == records.spf.value.encode()


def test_ttl_is_bounded() -> None:
    with pytest.raises(ValueError, match="TTL"):
        to_bind(seed_records(), ttl=-1)
    assert " 86400 IN " in to_bind(seed_records(), ttl=86400)


@given(
    domain_st,
    team_st,
    st.lists(token_st, max_size=3, unique=True),
    region_st,
    st.one_of(st.none(), label_st),
    st.integers(min_value=0, max_value=2**31 - 1),
    st.text(min_size=1, max_size=700).filter(lambda v: "\x00" not in v),
)
def test_bind_output_parses_and_holds_every_record(
    domain: str,
    team: str,
    tokens: list[str],
    region: str,
    mail_from_label: str | None,
    ttl: int,
    odd_value: str,
) -> None:
    # The MAIL FROM SPF value is operator text: any quotes, backslashes or non-ASCII in it
    # must survive the trip through the zone file byte for byte.
    settings = RecordSettings(mail_from_spf=odd_value)
    mail_from = mail_from_domain_for(domain, mail_from_label) if mail_from_label else None
    records = derive_records(domain, team, tokens, region, settings, mail_from)
    text = to_bind(records, ttl=ttl)
    assert text.isascii()
    assert_zone_holds(parse(text, domain), records, ttl)
