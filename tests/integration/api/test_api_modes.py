"""Send-only and send-receive domains through the api, and a send-only domain's upgrade."""

from __future__ import annotations

import pytest

from domainflow.api.teams.service import NewKey
from domainflow.contracts import VerificationOutcome
from tests.integration.api.harness import DOMAINS, MAILBOXES, ApiHarness, auth, unique

pytestmark = pytest.mark.integration


async def _send_only(api: ApiHarness, team: NewKey) -> dict[str, object]:
    name = f"{unique('so')}.example.com"
    added = await api.client.post(
        DOMAINS, json={"domain": name, "mode": "send_only"}, headers=auth(team.plaintext)
    )
    assert added.status_code == 202, added.text
    data: dict[str, object] = added.json()["data"]
    assert data["mode"] == "send_only"
    await api.provision(team, data)
    return data


async def test_a_send_only_domain_hosts_no_mailbox(api: ApiHarness, team: NewKey) -> None:
    domain = await _send_only(api, team)
    await api.verification(team, domain, VerificationOutcome.PASSED)
    refused = await api.client.post(
        MAILBOXES, json={"address": f"a@{domain['domain']}"}, headers=auth(team.plaintext)
    )
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["reason"]) == ("conflict", "domain_send_only")
    assert f"PATCH /api/v1/domains/{domain['id']}" in error["message"]


async def test_get_answers_304_to_its_own_etag(api: ApiHarness, team: NewKey) -> None:
    domain = await _send_only(api, team)
    path = f"{DOMAINS}/{domain['id']}"
    first = await api.client.get(path, headers=auth(team.plaintext))
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    same = await api.client.get(path, headers={**auth(team.plaintext), "If-None-Match": etag})
    assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", etag)
    await api.verification(team, domain, VerificationOutcome.PASSED)  # it changes
    changed = await api.client.get(path, headers={**auth(team.plaintext), "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


async def test_an_upgrade_honours_if_match_and_returns_the_domain_to_pending(
    api: ApiHarness, team: NewKey
) -> None:
    domain = await _send_only(api, team)
    path = f"{DOMAINS}/{domain['id']}"
    etag = (await api.client.get(path, headers=auth(team.plaintext))).headers["etag"]
    await api.verification(team, domain, VerificationOutcome.PASSED)  # stale from here on

    stale = await api.client.patch(
        path, json={"mode": "send_receive"}, headers={**auth(team.plaintext), "If-Match": etag}
    )
    assert stale.status_code == 409, stale.text
    assert stale.json()["error"]["reason"] == "precondition_failed"
    assert await api.status_of(str(domain["id"])) == "verified"  # nothing changed

    fresh = (await api.client.get(path, headers=auth(team.plaintext))).headers["etag"]
    upgraded = await api.client.patch(
        path, json={"mode": "send_receive"}, headers={**auth(team.plaintext), "If-Match": fresh}
    )
    assert upgraded.status_code == 200, upgraded.text
    data = upgraded.json()["data"]
    assert (data["mode"], data["state"]) == ("send_receive", "pending")
    timeline = await api.client.get(f"{path}/timeline", headers=auth(team.plaintext))
    assert timeline.json()["data"]["items"][0]["happening"] == "receiving_requested"


@pytest.mark.parametrize(
    "body", [{"mode": "send_only"}, {"region": "eu-west-1"}, {}, {"mode": "sideways"}]
)
async def test_anything_but_an_upgrade_is_a_422(
    api: ApiHarness, team: NewKey, body: dict[str, str]
) -> None:
    domain = await _send_only(api, team)
    response = await api.client.patch(
        f"{DOMAINS}/{domain['id']}", json=body, headers=auth(team.plaintext)
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert await api.fetchval("SELECT mode FROM domains WHERE public_id = $1", domain["id"]) == (
        "send_only"
    )


async def test_a_readonly_key_cannot_change_a_domain(api: ApiHarness, team: NewKey) -> None:
    domain = await _send_only(api, team)
    readonly = await api.key(team.team_name, role="root:readonly")
    response = await api.client.patch(
        f"{DOMAINS}/{domain['id']}", json={"mode": "send_receive"}, headers=auth(readonly.plaintext)
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_permissions"
