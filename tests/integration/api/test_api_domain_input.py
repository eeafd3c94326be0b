"""`POST /domains` over HTTP: each bad input its own 400, oversize 413, duplicates 409, no 500."""

from __future__ import annotations

from typing import Any

import pytest

from domainflow.api.teams.service import NewKey
from domainflow.contracts import ProvisioningRolledBack
from tests.integration.api.harness import DOMAINS, ApiHarness, Request, auth, unique

pytestmark = pytest.mark.integration

_LONG_NAME = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters
assert len(_LONG_NAME) == 253


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param({}, "domain_missing", id="missing"),
        pytest.param({"domain": None}, "domain_missing", id="null"),
        pytest.param({"domain": ""}, "domain_missing", id="empty"),
        pytest.param({"domain": "   "}, "domain_missing", id="blank"),
        pytest.param({"domain": "https://mail.acme.com"}, "domain_has_scheme", id="scheme"),
        pytest.param({"domain": "//mail.acme.com"}, "domain_has_scheme", id="scheme-relative"),
        pytest.param({"domain": "mail.acme.com/inbox"}, "domain_has_path", id="path"),
        pytest.param({"domain": "mail.acme.com?x=1"}, "domain_has_path", id="query"),
        pytest.param({"domain": "mail.acme.com:25"}, "domain_has_port", id="port"),
        pytest.param({"domain": "mail.acme.com/"}, "domain_trailing_slash", id="trailing-slash"),
        pytest.param({"domain": "mail.acme.com."}, "domain_trailing_dot", id="trailing-dot"),
        pytest.param({"domain": "Mail.Acme.com"}, "domain_uppercase", id="uppercase"),
        pytest.param({"domain": "*.acme.com"}, "domain_wildcard", id="wildcard"),
        pytest.param({"domain": "192.0.2.10"}, "domain_is_ip_address", id="ipv4"),
        pytest.param({"domain": "2001:db8::1"}, "domain_is_ip_address", id="ipv6"),
        pytest.param({"domain": "[2001:db8::1]"}, "domain_is_ip_address", id="ipv6-bracketed"),
        pytest.param({"domain": "a" * 64 + ".acme.com"}, "label_too_long", id="label-64"),
        pytest.param({"domain": "e" + _LONG_NAME[1:] + "d"}, "domain_too_long", id="name-254"),
        pytest.param({"domain": "co.uk"}, "domain_is_public_suffix", id="co.uk"),
        pytest.param({"domain": "github.io"}, "domain_is_public_suffix", id="github.io"),
        pytest.param({"domain": "exa mple.com"}, "domain_has_whitespace", id="space"),
        pytest.param({"domain": "a_b.com"}, "domain_invalid_characters", id="underscore"),
        pytest.param({"domain": "a!b.com"}, "domain_invalid_characters", id="bang"),
        pytest.param({"domain": "-acme.com"}, "label_bad_hyphen", id="hyphen"),
        pytest.param({"domain": "mail..acme.com"}, "domain_empty_label", id="empty-label"),
        pytest.param({"domain": "localhost"}, "domain_single_label", id="single-label"),
        pytest.param({"domain": "bot@acme.com"}, "domain_is_email_address", id="email"),
        pytest.param({"domain": 42}, "domain_not_string", id="number"),
        pytest.param({"domain": True}, "domain_not_string", id="bool"),
        pytest.param({"domain": ["mail.acme.com"]}, "domain_not_string", id="list"),
        pytest.param({"domain": {"name": "mail.acme.com"}}, "domain_not_string", id="object"),
        pytest.param({"domain": "myagent.mx"}, "domain_reserved", id="shared-domain"),
        pytest.param({"domain": "abc.myagent.mx"}, "domain_reserved", id="shared-suffix"),
    ],
)
async def test_each_bad_domain_gets_its_own_reason(
    api: ApiHarness, team: NewKey, body: dict[str, Any], reason: str
) -> None:
    response = await api.client.post(DOMAINS, json=body, headers=auth(team.plaintext))

    assert response.status_code == 400, response.text
    payload = response.json()
    assert payload["ok"] is False
    missing = reason.endswith("_missing")
    assert payload["error"]["code"] == ("missing_parameter" if missing else "invalid_parameter")
    assert payload["error"]["retryable"] is False
    assert payload["error"]["reason"] == reason
    assert payload["error"]["errors"] == [
        {"code": reason, "field": "domain", "message": payload["error"]["message"]}
    ]
    assert payload["error"]["param"] == "domain"
    assert payload["error"]["message"]
    assert payload["meta"]["request_id"] == response.headers["x-request-id"]
    listed = await api.client.get(DOMAINS, headers=auth(team.plaintext))
    assert listed.json()["data"] == []


async def test_the_longest_valid_name_is_accepted(api: ApiHarness, team: NewKey) -> None:
    """253 octets is DNS's limit for a name; every domain also needs its MAIL FROM subdomain
    (`send.` + the name) to fit in it, so the longest name accepted is 248."""
    name = _LONG_NAME[: -len("d" * 61)] + unique("x") + "d" * 45
    assert len(name) == 248
    response = await api.client.post(DOMAINS, json={"domain": name}, headers=auth(team.plaintext))
    assert response.status_code == 202, response.text
    assert response.json()["data"]["domain"] == name
    assert response.json()["data"]["dns_records"]["mail_from"]["spf"]["name"] == f"send.{name}"

    longer = name + "d"
    response = await api.client.post(DOMAINS, json={"domain": longer}, headers=auth(team.plaintext))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["reason"] == "domain_too_long"
    assert "248" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"region": "mars-north-9x"}, "region", "region_invalid"),
        ({"external_id": ""}, "external_id", "external_id_invalid"),
        ({"external_id": "x" * 256}, "external_id", "external_id_invalid"),
        ({"metadata": {"k": "v" * 9000}}, "metadata", "metadata_too_large"),
        ({"mail_from": "bad label"}, "mail_from", "mail_from_invalid"),
    ],
)
async def test_bad_optional_fields_name_their_field(
    api: ApiHarness, team: NewKey, body: dict[str, Any], field: str, reason: str
) -> None:
    response = await api.client.post(
        DOMAINS, json={"domain": f"{unique('m')}.example.com", **body}, headers=auth(team.plaintext)
    )
    assert response.status_code == 400, response.text
    assert (response.json()["error"]["reason"], response.json()["error"]["param"]) == (
        reason,
        field,
    )


async def test_a_unicode_name_is_stored_as_its_a_label(api: ApiHarness, team: NewKey) -> None:
    response = await api.client.post(
        DOMAINS, json={"domain": "bücher.example"}, headers=auth(team.plaintext)
    )

    assert response.status_code == 202, response.text
    data = response.json()["data"]
    assert data["domain"] == "xn--bcher-kva.example"
    assert data["display_domain"] == "bücher.example"
    assert data["dns_records"]["dmarc"]["name"] == "_dmarc.xn--bcher-kva.example"
    again = await api.client.post(
        DOMAINS, json={"domain": "xn--bcher-kva.example"}, headers=auth(team.plaintext)
    )
    assert again.status_code == 409  # the same name in either form


@pytest.mark.parametrize(
    ("content", "content_type", "code"),
    [
        pytest.param(b'{"domain": "mail.acme.com"', "application/json", "invalid_json", id="cut"),
        pytest.param(b"domain=mail.acme.com", "application/json", "invalid_json", id="form"),
        pytest.param(b"\xff\xfe", "application/json", "invalid_json", id="bytes"),
        pytest.param(b"", "application/json", "invalid_request", id="empty"),
        pytest.param(b"null", "application/json", "invalid_request", id="null"),
        pytest.param(b'["mail.acme.com"]', "application/json", "invalid_request", id="array"),
        pytest.param(b'"mail.acme.com"', "application/json", "invalid_request", id="string"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_a_400(
    api: ApiHarness, team: NewKey, content: bytes, content_type: str, code: str
) -> None:
    response = await api.client.post(
        DOMAINS,
        content=content,
        headers={**auth(team.plaintext), "Content-Type": content_type},
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"]["reason"] == code
    assert "JSON" in response.json()["error"]["message"]  # says what to send


async def test_unknown_body_fields_are_refused(api: ApiHarness, team: NewKey) -> None:
    response = await api.client.post(
        DOMAINS,
        json={"domain": f"{unique('m')}.example.com", "name": "typo"},
        headers=auth(team.plaintext),
    )

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["reason"] == "invalid_request"
    assert "name" in error["message"]


async def test_a_body_over_the_limit_is_a_413(api: ApiHarness, team: NewKey) -> None:
    padding = "x" * (api.settings.http.max_body_bytes + 1)
    response = await api.client.post(
        DOMAINS,
        json={"domain": f"{unique('m')}.example.com", "metadata": {"pad": padding}},
        headers=auth(team.plaintext),
    )

    assert response.status_code == 413, response.text
    assert response.json()["error"]["reason"] == "request_too_large"


async def test_a_duplicate_in_the_same_team_is_a_409_naming_the_existing_domain(
    api: ApiHarness, team: NewKey
) -> None:
    first = await api.add_domain(team.plaintext)

    response = await api.client.post(
        DOMAINS, json={"domain": first["domain"]}, headers=auth(team.plaintext)
    )

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["reason"] == "domain_exists"
    assert error["details"] == {"id": first["id"]}


async def test_a_name_another_team_holds_is_a_409_that_hides_its_id_and_says_how_to_claim_it(
    api: ApiHarness, team: NewKey
) -> None:
    first = await api.add_domain(team.plaintext)
    other = await api.key()

    response = await api.client.post(
        DOMAINS, json={"domain": first["domain"]}, headers=auth(other.plaintext)
    )

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["reason"] == "domain_exists"
    assert first["id"] not in response.text
    assert team.team_public_id not in response.text  # the holder is never named
    # The caller learns how to claim the name if it is theirs: its own TXT, the endpoint.
    assert error["details"] == {
        "claim": {
            "record": {
                "type": "TXT",
                "name": f"_sendmux.{first['domain']}",
                "value": f"sendmux-verify={other.team_public_id}",
            },
            "method": "POST",
            "endpoint": "/api/v1/domains/claims",
        }
    }


@pytest.mark.parametrize("round_", range(5))
async def test_concurrent_posts_of_one_name_accept_exactly_one(
    api: ApiHarness, round_: int
) -> None:
    name = f"{unique('race')}.example.com"
    keys = [(await api.key()).plaintext for _ in range(2)]
    requests = [Request("POST", DOMAINS, keys[i % 2], {"domain": name}) for i in range(6)]

    responses = await api.concurrently(*requests)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202, 409, 409, 409, 409, 409], [r.text for r in responses]
    assert all(
        r.json()["error"]["reason"] == "domain_exists" for r in responses if r.status_code == 409
    )
    assert await api.fetchval("SELECT count(*) FROM domains WHERE domain = $1", name) == 1


async def test_a_name_freed_by_a_rolled_back_provisioning_can_be_added_again(
    api: ApiHarness, team: NewKey
) -> None:
    first = await api.add_domain(team.plaintext)
    await api.call(
        api.handlers.on_rolled_back,
        ProvisioningRolledBack(
            correlation_id="req_test",
            team_id=team.team_public_id,
            domain_id=first["id"],
            domain=first["domain"],
            failed_step="ses",
            reason="throttled",
        ),
    )

    again = await api.client.post(
        DOMAINS, json={"domain": first["domain"]}, headers=auth(team.plaintext)
    )

    assert again.status_code == 202, again.text
    assert again.json()["data"]["id"] != first["id"]
    gone = await api.client.get(f"{DOMAINS}/{first['id']}", headers=auth(team.plaintext))
    assert gone.status_code == 404
