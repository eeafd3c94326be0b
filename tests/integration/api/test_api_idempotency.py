"""`Idempotency-Key` on POST /domains: a retry after a lost answer gets the same domain."""

from __future__ import annotations

import uuid

import pytest

from domainflow.api.teams.service import NewKey
from tests.integration.api.harness import DOMAINS, ApiHarness, Request, auth, unique

pytestmark = pytest.mark.integration


async def test_a_retried_request_with_the_same_key_gets_the_same_domain(
    api: ApiHarness, team: NewKey
) -> None:
    body = {"domain": f"{unique('idem')}.example.com"}
    headers = {**auth(team.plaintext), "Idempotency-Key": str(uuid.uuid4())}
    first = await api.client.post(DOMAINS, json=body, headers=headers)
    again = await api.client.post(DOMAINS, json=body, headers=headers)

    assert first.status_code in (201, 202), first.text
    assert again.status_code in (201, 202), again.text
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    listed = await api.client.get(f"{DOMAINS}?limit=100", headers=auth(team.plaintext))
    names = [d["domain"] for d in listed.json()["data"]]
    assert names.count(body["domain"]) == 1


async def test_without_a_key_the_retry_is_a_conflict(api: ApiHarness, team: NewKey) -> None:
    body = {"domain": f"{unique('idem')}.example.com"}
    await api.client.post(DOMAINS, json=body, headers=auth(team.plaintext))
    again = await api.client.post(DOMAINS, json=body, headers=auth(team.plaintext))
    assert again.status_code == 409
    assert again.json()["error"]["reason"] == "domain_exists"


async def test_a_key_reused_for_another_request_is_refused(api: ApiHarness, team: NewKey) -> None:
    headers = {**auth(team.plaintext), "Idempotency-Key": str(uuid.uuid4())}
    await api.client.post(
        DOMAINS, json={"domain": f"{unique('idem')}.example.com"}, headers=headers
    )
    other = await api.client.post(
        DOMAINS, json={"domain": f"{unique('idem')}.example.com"}, headers=headers
    )
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "idempotency_conflict"
    assert other.json()["error"]["reason"] == "idempotency_key_reused"


async def test_concurrent_requests_with_one_key_create_one_domain(
    api: ApiHarness, team: NewKey
) -> None:
    for _ in range(5):  # a race: several rounds, so a lost one shows
        body = {"domain": f"{unique('idem')}.example.com"}
        key = {"Idempotency-Key": str(uuid.uuid4())}
        answers = await api.concurrently(
            *(Request("POST", DOMAINS, team.plaintext, json=body, headers=key) for _ in range(5))
        )
        assert all(a.status_code in (201, 202) for a in answers), [a.text for a in answers]
        assert len({a.json()["data"]["id"] for a in answers}) == 1


async def test_a_malformed_key_is_a_400(api: ApiHarness, team: NewKey) -> None:
    answer = await api.client.post(
        DOMAINS,
        json={"domain": f"{unique('idem')}.example.com"},
        headers={**auth(team.plaintext), "Idempotency-Key": "has spaces in it"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["reason"] == "invalid_idempotency_key"
