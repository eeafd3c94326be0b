"""Who may do what: 401 without a good key, seed 001's permission table, and team isolation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from domainflow.api.teams import service as teams
from domainflow.api.teams.keyring import KeyRing
from domainflow.api.teams.service import NewKey
from domainflow.api.unit_of_work import PostgresUnitOfWork
from domainflow.kit.database import Database
from tests.integration.api.harness import DOMAINS, MAILBOXES, ApiHarness, auth, unique

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": ""}, id="empty-header"),
        pytest.param({"Authorization": "Bearer"}, id="bearer-without-key"),
        pytest.param({"Authorization": "Bearer    "}, id="bearer-blank"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic"),
        pytest.param({"Authorization": "Token smx_root_abc"}, id="other-scheme"),
        pytest.param({"Authorization": "smx_root_abc"}, id="key-without-scheme"),
        pytest.param({"Authorization": "Bearer smx_root_" + "A" * 44}, id="unknown-key"),
        pytest.param({"Authorization": "Bearer not-a-key-at-all"}, id="garbage-key"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", DOMAINS), ("POST", DOMAINS), ("GET", f"{DOMAINS}/mdom_x"), ("GET", MAILBOXES)],
)
async def test_no_valid_key_is_a_401(
    api: ApiHarness, headers: dict[str, str], method: str, path: str
) -> None:
    response = await api.client.request(
        method, path, headers=headers, json={"domain": "a.example.com"}
    )

    assert response.status_code == 401, response.text
    payload = response.json()
    assert payload["ok"] is False
    assert payload["error"]["reason"] == "unauthorized"
    assert payload["meta"]["request_id"] == response.headers["x-request-id"]


async def test_a_revoked_key_is_a_401_and_the_teams_other_keys_still_work(
    api: ApiHarness,
) -> None:
    team = unique("team-")
    kept = await api.key(team)
    revoked = await api.key(team)
    assert (await api.client.get(DOMAINS, headers=auth(revoked.plaintext))).status_code == 200

    assert await api.revoke(revoked.key_id)

    response = await api.client.get(DOMAINS, headers=auth(revoked.plaintext))
    assert response.status_code == 401
    assert response.json()["error"]["reason"] == "unauthorized"
    assert (await api.client.get(DOMAINS, headers=auth(kept.plaintext))).status_code == 200


async def test_a_key_revoked_elsewhere_stops_working_here(api: ApiHarness) -> None:
    """Revoked by the CLI (another process, its own connection): this replica, which remembers
    the key, forgets it when PostgreSQL delivers the revocation's NOTIFY."""
    key = await api.key()
    assert (await api.client.get(DOMAINS, headers=auth(key.plaintext))).status_code == 200
    cli = await Database.connect(api.settings.database.url, size=1)
    try:
        assert await teams.revoke_key(PostgresUnitOfWork(cli), key.key_id)
    finally:
        await cli.close()
    statuses = []
    for _ in range(100):  # the notification, not a clock, ends this: it comes in milliseconds
        statuses.append((await api.client.get(DOMAINS, headers=auth(key.plaintext))).status_code)
        if statuses[-1] == 401:
            break
        await asyncio.sleep(0.1)
    assert statuses[-1] == 401, statuses


async def test_a_keys_last_use_is_written(api: ApiHarness) -> None:
    key = await api.key()
    sql = "SELECT last_used_at FROM api_keys WHERE key_id = $1"
    assert await api.fetchval(sql, key.key_id) is None
    assert (await api.client.get(DOMAINS, headers=auth(key.plaintext))).status_code == 200
    keyring: KeyRing = api.app.state.keyring
    await api.call(keyring.flush)  # what its background task does every few seconds
    assert await api.fetchval(sql, key.key_id) is not None


async def test_the_key_must_match_exactly(api: ApiHarness, team: NewKey) -> None:
    for variant in (team.plaintext[:-1], team.plaintext + "x", team.plaintext.upper()):
        response = await api.client.get(DOMAINS, headers=auth(variant))
        assert response.status_code == 401, variant
    # The scheme word is case-insensitive (RFC 7235); the key is not.
    ok = await api.client.get(DOMAINS, headers={"Authorization": f"bearer {team.plaintext}"})
    assert ok.status_code == 200


# --- the permission table ----------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {domain} and {mailbox} are filled in per test
    permission: str
    full_status: int  # what root:full gets here (no provisioner or verifier runs)
    body: Any = None


ENDPOINTS = [
    Endpoint("POST", DOMAINS, "domain.create", 202, {"domain": "{new}"}),
    Endpoint("GET", DOMAINS, "domain.read", 200),
    Endpoint("GET", DOMAINS + "/{domain}", "domain.read", 200),
    Endpoint("GET", DOMAINS + "/{domain}/dns-records", "domain.read", 200),
    Endpoint("GET", DOMAINS + "/{domain}/timeline", "domain.read", 200),
    Endpoint("GET", DOMAINS + "/{domain}/dns-records?format=bind", "domain.read", 200),
    Endpoint("POST", DOMAINS + "/{domain}/verify", "domain.verify", 503),
    Endpoint("DELETE", DOMAINS + "/{domain}", "domain.delete", 200),
    Endpoint("POST", MAILBOXES, "mailbox.create", 201, {"address": "{address}"}),
    Endpoint("GET", MAILBOXES, "mailbox.read", 200),
    Endpoint("GET", MAILBOXES + "/{mailbox}", "mailbox.read", 200),
    Endpoint("DELETE", MAILBOXES + "/{mailbox}", "mailbox.delete", 200),
]


@pytest.fixture
async def estate(api: ApiHarness) -> dict[str, Any]:
    """A team with a root:full and a root:readonly key, a pending domain and a mailbox."""
    name = unique("team-")
    full = await api.key(name, "root:full")
    readonly = await api.key(name, "root:readonly")
    domain = await api.pending_domain(full)
    suffix = api.shared_suffix(full)
    mailbox = await api.client.post(
        MAILBOXES, json={"address": f"keep@{suffix}"}, headers=auth(full.plaintext)
    )
    assert mailbox.status_code == 201, mailbox.text
    return {
        "root:full": full,
        "root:readonly": readonly,
        "domain": domain,
        "mailbox": mailbox.json()["data"],
        "suffix": suffix,
    }


def _fill(text: str, estate: dict[str, Any]) -> str:
    return (
        text.replace("{domain}", estate["domain"]["id"])
        .replace("{mailbox}", estate["mailbox"]["id"])
        .replace("{new}", f"{unique('new')}.example.com")
        .replace("{address}", f"{unique('bot')}@{estate['suffix']}")
    )


@pytest.mark.parametrize("role", ["root:full", "root:readonly"])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
async def test_permission_table(
    api: ApiHarness, estate: dict[str, Any], endpoint: Endpoint, role: str
) -> None:
    key: NewKey = estate[role]
    body = None
    if endpoint.body is not None:
        body = {k: _fill(v, estate) for k, v in endpoint.body.items()}
    allowed = role == "root:full" or endpoint.permission.endswith(".read")
    before = await api.status_of(estate["domain"]["id"])

    response = await api.client.request(
        endpoint.method, _fill(endpoint.path, estate), json=body, headers=auth(key.plaintext)
    )

    if allowed:
        assert response.status_code == endpoint.full_status, response.text
        return
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["reason"] == "forbidden"
    assert error["details"] == {"required_permission": endpoint.permission}
    # Refused means nothing changed.
    assert await api.status_of(estate["domain"]["id"]) == before
    mailbox = await api.client.get(
        f"{MAILBOXES}/{estate['mailbox']['id']}", headers=auth(key.plaintext)
    )
    assert mailbox.status_code == 200
    if body is not None:
        domains = await api.client.get(DOMAINS, headers=auth(key.plaintext))
        assert [d["id"] for d in domains.json()["data"]] == [estate["domain"]["id"]]
        mailboxes = await api.client.get(MAILBOXES, headers=auth(key.plaintext))
        assert len(mailboxes.json()["data"]) == 1


# --- one team never sees another's ----------------------------------------------------------


async def test_another_teams_domain_is_not_found_and_untouched(api: ApiHarness) -> None:
    owner = await api.key()
    stranger = await api.key()
    domain = await api.pending_domain(owner)
    mine = await api.pending_domain(stranger)
    path = f"{DOMAINS}/{domain['id']}"

    for method, url in [
        ("GET", path),
        ("GET", f"{path}/dns-records"),
        ("GET", f"{path}/dns-records?format=bind"),
        ("POST", f"{path}/verify"),
        ("DELETE", path),
    ]:
        response = await api.client.request(method, url, headers=auth(stranger.plaintext))
        assert response.status_code == 404, (method, url, response.text)
        error = response.json()["error"]
        assert error["reason"] == "domain_not_found"
        assert domain["domain"] not in response.text
        # Exactly as if the id did not exist at all.
        missing = await api.client.request(
            method, url.replace(domain["id"], "mdom_doesnotexist"), headers=auth(stranger.plaintext)
        )
        assert missing.status_code == 404
        assert missing.json()["error"]["reason"] == error["reason"]

    listed = await api.client.get(DOMAINS, headers=auth(stranger.plaintext))
    assert [d["id"] for d in listed.json()["data"]] == [mine["id"]]
    assert await api.status_of(domain["id"]) == "pending"
    assert (
        await api.fetchval(
            "SELECT verify_requested_at FROM domains WHERE public_id = $1", domain["id"]
        )
        is None
    )
    owners_view = await api.client.get(path, headers=auth(owner.plaintext))
    assert owners_view.status_code == 200
    assert owners_view.json()["data"]["state"] == "pending"
