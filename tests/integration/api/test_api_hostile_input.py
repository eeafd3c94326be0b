"""Each hostile or careless input of issue 11, sent to the api: a 4xx with its reason, and
nothing written (no domain, no timeline line, no event, no Idempotency-Key, no team).

Over the api's real database and RabbitMQ vhost; what "nothing written" means is read from
the tables a half-done request would have touched.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from domainflow.api.teams.service import NewKey, create_key
from tests.integration.api.harness import DOMAINS, ApiHarness, auth, unique

pytestmark = pytest.mark.integration


async def _written(api: ApiHarness) -> dict[str, Any]:
    """What a request that half-happened would leave behind (the outbox relay deletes what
    it published, so its newest id is compared, not its size)."""
    return {
        "domains": await api.fetchval("SELECT count(*) FROM domains"),
        "timeline": await api.fetchval("SELECT coalesce(max(id), 0) FROM domain_timeline"),
        "outbox": await api.fetchval("SELECT coalesce(max(id), 0) FROM outbox"),
        "keys": await api.fetchval("SELECT count(*) FROM idempotency_keys"),
        "teams": await api.fetchval("SELECT count(*) FROM teams"),
    }


def _name() -> str:
    return f"{unique('hostile')}.example.com"


#: (what is sent, the status, the reason): the request body's inputs.
BODIES = [
    pytest.param({"region": "us-east-1\n"}, 400, "region_invalid", id="region-newline"),
    pytest.param({"region": "xx-nowhere-1"}, 400, "region_not_offered", id="region-unknown"),
    pytest.param({"metadata": {"k": "a\u0000b"}}, 400, None, id="nul-in-metadata"),
    pytest.param({"external_id": "ext\u0000"}, 400, None, id="nul-in-external-id"),
    pytest.param({"domain": "gmail.com"}, 400, "domain_reserved", id="gmail"),
    pytest.param({"domain": "outlook.com"}, 400, "domain_reserved", id="outlook"),
    pytest.param({"domain": "amazonses.com"}, 400, "domain_reserved", id="amazonses"),
    pytest.param({"domain": "sendmux.ai"}, 400, "domain_reserved", id="operator-domain"),
    pytest.param({"domain": "mail.sendmux.ai"}, 400, "domain_reserved", id="operator-mx"),
    pytest.param({"domain": "mail.localhost"}, 400, "domain_special_use", id="localhost"),
    pytest.param({"domain": "hidden.onion"}, 400, "domain_special_use", id="onion"),
    pytest.param({"domain": "10.2.0.192.in-addr.arpa"}, 400, "domain_special_use", id="arpa"),
    pytest.param({"domain": "g\u043e\u043egle.com"}, 400, None, id="mixed-script"),
    pytest.param({"domain": "goo\u200bgle.com"}, 400, None, id="zero-width"),
    pytest.param({"domain": "\uff47oogle.com"}, 400, None, id="fullwidth"),
]


@pytest.mark.parametrize(("extra", "status", "reason"), BODIES)
async def test_a_hostile_body_is_refused_and_nothing_is_written(
    api: ApiHarness, team: NewKey, extra: dict[str, Any], status: int, reason: str | None
) -> None:
    before = await _written(api)
    body = {"domain": _name(), **extra}
    answer = await api.client.post(DOMAINS, json=body, headers=auth(team.plaintext))
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    if reason is not None:
        assert error["reason"] == reason
    assert error["message"]  # a sentence to act on
    assert answer.json()["meta"]["request_id"] == answer.headers["x-request-id"]
    assert await _written(api) == before


async def test_deep_nesting_is_a_400_and_nothing_is_written(api: ApiHarness, team: NewKey) -> None:
    before = await _written(api)
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    body = f'{{"domain": "{_name()}", "metadata": {deep}}}'
    answer = await api.client.post(
        DOMAINS,
        content=body.encode(),
        headers={**auth(team.plaintext), "Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["reason"] == "json_too_deep"
    stranger = await api.client.post(
        DOMAINS, content=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert stranger.status_code == 401  # who asks is settled before what is sent
    assert await _written(api) == before


@pytest.mark.parametrize("key", ["abc\n", "abc\u0000", "a" * 300, "has space"])
async def test_a_hostile_idempotency_key_is_a_400_and_nothing_is_written(
    api: ApiHarness, team: NewKey, key: str
) -> None:
    before = await _written(api)
    headers = [
        *((k.encode(), v.encode()) for k, v in auth(team.plaintext).items()),
        (b"idempotency-key", key.encode()),
        (b"content-type", b"application/json"),
    ]
    answer = await api.client.post(
        DOMAINS, content=json.dumps({"domain": _name()}).encode(), headers=headers
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["reason"] == "invalid_idempotency_key"
    assert await _written(api) == before


@pytest.mark.parametrize(
    "path",
    [
        f"{DOMAINS}/mdom_x%00y",
        f"{DOMAINS}?status=pending%00",
        f"{DOMAINS}?cursor=%00",
        f"{DOMAINS}/{'x' * 60_000}",
    ],
    ids=["nul-in-path", "nul-in-status", "nul-in-cursor", "60kb-id"],
)
async def test_bad_bytes_in_a_path_or_query_are_refused_and_not_echoed(
    api: ApiHarness, team: NewKey, path: str
) -> None:
    before = await _written(api)
    answer = await api.client.get(path, headers=auth(team.plaintext))
    assert answer.status_code in (400, 404), answer.text
    assert "x" * 100 not in answer.text
    assert "\u0000" not in answer.text
    assert answer.json()["meta"]["request_id"] == answer.headers["x-request-id"]
    assert await _written(api) == before


async def test_an_unknown_route_carries_a_request_id(api: ApiHarness) -> None:
    answer = await api.client.get("/api/v1/nowhere")
    assert answer.status_code == 404
    assert answer.headers["x-request-id"].startswith("req_")
    assert answer.json()["meta"]["request_id"] == answer.headers["x-request-id"]


@pytest.mark.parametrize(
    "owner",
    ["a@x\r\nbcc: b@y", "a@x, b@y", "not an address", "<a@x>"],
)
async def test_an_owner_address_with_header_characters_is_refused_and_no_team_is_made(
    api: ApiHarness, owner: str
) -> None:
    before = await _written(api)
    with pytest.raises(ValueError, match=r"."):
        await api.call(
            create_key,
            api.uow,
            team=unique("team-"),
            owner_email=owner,
            role="root:full",
            prefix=api.settings.keys.prefix,
        )
    assert await _written(api) == before
