"""An operator finds who holds a name and takes it back, under the same rules as a DELETE.

Over the api's real database; the provisioner's answer is fed through the api's handlers.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import pytest

from domainflow.api.domain.errors import DomainInUse
from domainflow.api.domains import operators
from domainflow.api.teams.service import NewKey
from domainflow.cli.operators import holding_view
from domainflow.contracts import (
    DomainDeprovisioned,
    DomainProvisioned,
    SagaNeedsOperator,
)
from tests.integration.api.harness import DOMAINS, MAILBOXES, ApiHarness, auth, listening, unique

pytestmark = pytest.mark.integration


async def _deprovisioned(api: ApiHarness, team_public_id: str, domain: dict[str, Any]) -> None:
    """The provisioner's answer once SES and the mail server no longer hold the domain."""
    event = DomainDeprovisioned(
        correlation_id=unique("req_"),
        team_id=team_public_id,
        domain_id=domain["id"],
        domain=domain["domain"],
    )
    await api.call(api.handlers.on_deprovisioned, event)


async def test_a_held_name_is_released_and_its_rightful_owner_adds_it(api: ApiHarness) -> None:
    squatter, owner = await api.key(), await api.key()
    name = f"{unique('held')}.example.com"
    held = await api.pending_domain(squatter, name)

    refused = await api.client.post(DOMAINS, json={"domain": name}, headers=auth(owner.plaintext))
    assert refused.status_code == 409
    assert refused.json()["error"]["reason"] == "domain_exists"

    shown = holding_view(await api.call(operators.holder, api.uow, name))
    assert (shown["id"], shown["state"]) == (held["id"], "pending")
    assert shown["team"]["id"] == squatter.team_public_id
    assert shown["team"]["owners"] == ["owner@example.com"]
    assert [line["happening"] for line in shown["timeline"]] == ["provisioned", "requested"]

    async with listening(api, "domain.deletion_requested", "domain.status_changed") as heard:
        released = await api.call(
            operators.release, api.uow, api.settings, name, reason="ticket 4711: DNS proof"
        )
        assert released == held["id"]
        assert await api.status_of(held["id"]) == "deleting"
        said: dict[str, Any] = {}
        while len(said) < 2:
            message = await asyncio.wait_for(heard.get(), timeout=30)
            body = json.loads(message.body)
            if body["domain_id"] == held["id"]:
                said[body["type"]] = body
    # The provisioner is asked to undo SES and the mail server, as after a DELETE...
    asked = said["domain.deletion_requested"]
    assert (asked["team_id"], asked["correlation_id"][:3]) == (squatter.team_public_id, "op_")
    # ...and subscribers (the verifier: stop probing) see the move into `deleting`.
    moved = said["domain.status_changed"]
    assert (moved["old_status"], moved["new_status"]) == ("pending", "deleting")
    assert moved["reason"] == "released by an operator: ticket 4711: DNS proof"
    assert moved["correlation_id"] == asked["correlation_id"]
    line = await api.fetchval(
        "SELECT reason FROM domain_timeline t JOIN domains d ON d.id = t.domain_id"
        " WHERE d.public_id = $1 AND happening = 'deletion_requested'",
        held["id"],
    )
    assert line == "released by an operator: ticket 4711: DNS proof"

    await _deprovisioned(api, squatter.team_public_id, held)
    assert await api.status_of(held["id"]) == "deleted"
    added = await api.client.post(DOMAINS, json={"domain": name}, headers=auth(owner.plaintext))
    assert added.status_code == 202, added.text
    assert added.json()["data"]["id"] != held["id"]


async def test_a_release_keeps_the_rules_of_a_delete(api: ApiHarness) -> None:
    team = await api.key()
    name = f"{unique('busy')}.example.com"
    domain = await api.verified_domain(team, name)
    mailbox = await api.client.post(
        MAILBOXES, json={"address": f"hello@{name}"}, headers=auth(team.plaintext)
    )
    assert mailbox.status_code == 201, mailbox.text
    with pytest.raises(DomainInUse) as in_use:
        await api.call(operators.release, api.uow, api.settings, name, reason="dispute")
    assert in_use.value.active_mailboxes == 1
    assert await api.status_of(domain["id"]) == "verified"  # nothing changed

    with pytest.raises(operators.NameNotHeldError):
        await api.call(
            operators.release, api.uow, api.settings, "nobody-holds-this.example", reason="x"
        )
    with pytest.raises(ValueError, match="say why"):
        await api.call(operators.release, api.uow, api.settings, name, reason="  ")


async def _stopped(api: ApiHarness, team: NewKey, domain: dict[str, Any], saga: str) -> None:
    """The provisioner's word that a saga of the domain stopped for an operator."""
    event = SagaNeedsOperator(
        correlation_id=unique("req_"),
        team_id=team.team_public_id,
        domain_id=domain["id"],
        domain=domain["domain"],
        saga=saga,
        step="mailserver",
        error_class="mailserver:unexpected:ValueError",
    )
    await api.call(api.handlers.on_needs_operator, event)


async def _stuck(api: ApiHarness, team: NewKey, how: str) -> dict[str, Any]:
    """A domain stuck as `how` says, reached through the api's own paths."""
    if how == "provisioning":  # its request parked as poison: no saga ever answers
        return await api.add_domain(team.plaintext)
    if how == "provisioning, its saga stopped":
        domain = await api.add_domain(team.plaintext)
        await _stopped(api, team, domain, "provision")
        return domain
    domain = await api.pending_domain(team)
    deleted = await api.client.delete(f"{DOMAINS}/{domain['id']}", headers=auth(team.plaintext))
    assert deleted.status_code == 200, deleted.text  # deleting: no provisioner answers here
    if how == "deleting, its removal stopped":
        await _stopped(api, team, domain, "deprovision")
    return domain


@pytest.mark.parametrize(
    "how",
    [
        "provisioning",
        "provisioning, its saga stopped",
        "deleting",
        "deleting, its removal stopped",
    ],
)
async def test_a_release_clears_a_domain_whatever_it_is_stuck_in(api: ApiHarness, how: str) -> None:
    team, other = await api.key(), await api.key()
    domain = await _stuck(api, team, how)
    name = domain["domain"]
    assert await api.status_of(domain["id"]) == how.split(",")[0]
    if "stopped" in how:
        noted = await api.fetchval(
            "SELECT reason FROM domain_timeline t JOIN domains d ON d.id = t.domain_id"
            " WHERE d.public_id = $1 AND happening = 'needs_operator'",
            domain["id"],
        )
        assert "mailserver:unexpected:ValueError" in noted
        assert "domainflow domains release" in noted

    keys = ("domain.deletion_requested", "domain.deleted")
    async with listening(api, *keys) as heard:
        released = await api.call(
            operators.release, api.uow, api.settings, name, reason="stuck, ticket 12"
        )
        assert released == domain["id"]
        assert await api.status_of(domain["id"]) == "deleted"  # at once
        said: dict[str, Any] = {}
        while len(said) < 2:
            body = json.loads((await asyncio.wait_for(heard.get(), timeout=30)).body)
            if body["domain_id"] == domain["id"]:
                said[body["type"]] = body
    # The provisioner removes what may be left; subscribers hear the domain is gone.
    assert said["domain.deletion_requested"]["correlation_id"].startswith("op_")
    assert said["domain.deleted"]["reason_code"] == "released_by_operator"
    line = await api.fetchval(
        "SELECT reason FROM domain_timeline t JOIN domains d ON d.id = t.domain_id"
        " WHERE d.public_id = $1 AND happening = 'released'",
        domain["id"],
    )
    assert line.startswith("released by an operator: stuck, ticket 12")

    # The name is free at once, and a late answer for the old domain changes nothing.
    added = await api.client.post(DOMAINS, json={"domain": name}, headers=auth(other.plaintext))
    assert added.status_code == 202, added.text
    late = DomainProvisioned(
        correlation_id="req_late", team_id=team.team_public_id, domain_id=domain["id"],
        domain=name, region="us-east-1", dkim_tokens=["a", "b", "c"],
    )  # fmt: skip
    await api.call(api.handlers.on_provisioned, late)
    await _deprovisioned(api, team.team_public_id, domain)
    assert await api.status_of(domain["id"]) == "deleted"
    assert await api.status_of(added.json()["data"]["id"]) == "provisioning"
    got = await api.client.get(f"{DOMAINS}/{domain['id']}", headers=auth(team.plaintext))
    assert got.status_code == 404


async def test_the_cli_shows_the_holder_and_releases(api: ApiHarness) -> None:
    team = await api.key()
    name = f"{unique('cli')}.example.com"
    domain = await api.pending_domain(team, name)
    env = {**os.environ, "DOMAINFLOW_API_DATABASE_URL": api.settings.database.url}

    async def run(*argv: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "domainflow.cli", "domains", *argv,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    code, out, _ = await run("show", name.upper() + ".")  # as an operator might paste it
    assert code == 0
    assert json.loads(out)["team"]["id"] == team.team_public_id

    code, _, err = await run("release", name)
    assert code == 2  # --reason is required
    assert "--reason" in err

    code, out, _ = await run("release", name, "--reason", "abuse report 12")
    assert code == 0
    assert domain["id"] in out
    assert await api.status_of(domain["id"]) == "deleting"

    code, _, err = await run("show", "free.example")
    assert (code, err.strip()) == (1, "error: no team holds free.example")
