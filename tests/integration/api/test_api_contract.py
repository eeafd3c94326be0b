"""Every answer of every operation, driven as a generated client would, against docs/openapi.json.

Each answer is checked by a validator (jsonschema over the document's own components): its
status is documented for the operation, its body validates against that status's schema, its
media type is the documented one, and every header the document promises is there.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from litestar.testing import AsyncTestClient
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from domainflow.api.app import create_app
from domainflow.api.teams.service import NewKey
from domainflow.contracts import (
    CheckOutcome,
    DkimStatus,
    RecordCheck,
    RecordKind,
    VerificationCompleted,
    VerificationOutcome,
    VerificationTrigger,
)
from tests.integration.api.conftest import api_settings
from tests.integration.api.harness import (
    DOMAINS,
    MAILBOXES,
    ApiHarness,
    Request,
    auth,
    ses_identity,
    unique,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
DOCUMENT: dict[str, Any] = json.loads((ROOT / "docs" / "openapi.json").read_text("utf-8"))
BASE = "urn:domainflow:openapi"
REGISTRY: Registry[Any] = Registry().with_resource(
    BASE, Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
)


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _answer(path: str, method: str, status: int) -> tuple[dict[str, Any], str]:
    """The documented answer (its `$ref` followed) and the JSON pointer to it."""
    operation = DOCUMENT["paths"][path][method]
    responses = operation["responses"]
    assert str(status) in responses, (
        f"{operation['operationId']} answered {status}, which is not documented "
        f"(documented: {sorted(responses)})"
    )
    answer = responses[str(status)]
    pointer = _pointer("paths", path, method, "responses", str(status))
    if "$ref" in answer:
        name = answer["$ref"].rsplit("/", 1)[-1]
        return DOCUMENT["components"]["responses"][name], _pointer("components", "responses", name)
    return answer, pointer


def conforms(path: str, method: str, response: httpx.Response) -> httpx.Response:
    """Hold one answer to the document; returns it so tests can go on reading it."""
    answer, pointer = _answer(path, method, response.status_code)
    for header, spec in answer.get("headers", {}).items():
        if spec.get("required"):
            assert header.lower() in response.headers, f"{header} missing: {response.headers}"
    content = answer.get("content")
    if not content:
        assert response.content == b"", response.content
        return response
    media = response.headers.get("content-type", "").split(";")[0].strip()
    assert media in content, f"{media} is not documented for {response.status_code}"
    if media == "application/json":
        ref = f"{BASE}#/{pointer}/content/{_pointer(media)}/schema"
        validator = Draft202012Validator({"$ref": ref}, registry=REGISTRY)
        errors = sorted(validator.iter_errors(response.json()), key=lambda e: e.path)
        assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    return response


DOMAIN = f"{DOMAINS}/{{public_id}}"
DOMAINS_PATH = "/api/v1/domains"
ONE_DOMAIN = "/api/v1/domains/{public_id}"


@pytest.fixture(scope="module")
async def api(
    database_url: Callable[[str], Awaitable[str]], amqp_url: str
) -> AsyncIterator[ApiHarness]:
    """An api whose verify waits long enough for the verifier's answer this test delivers."""
    settings = api_settings(
        await database_url("apicontract"), amqp_url, waits={"verify_seconds": 5.0}
    )
    async with AsyncTestClient(create_app(settings)) as client:
        yield ApiHarness(client, settings)


@pytest.fixture(scope="module")
async def readonly(api: ApiHarness) -> NewKey:
    return await api.key(role="root:readonly")


def _name() -> str:
    return f"{unique('mail')}.example.com"


async def test_the_served_document_is_the_committed_one(api: ApiHarness) -> None:
    served = await api.client.get("/schema/openapi.json")
    assert served.status_code == 200
    assert served.json() == DOCUMENT
    page = await api.client.get("/schema")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]


async def test_create_domain_every_answer(api: ApiHarness, team: NewKey, readonly: NewKey) -> None:
    path, key = DOMAINS_PATH, team.plaintext

    async def post(body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        sent = {**auth(key), **(headers or {})}
        return conforms(path, "post", await api.client.post(DOMAINS, json=body, headers=sent))

    name = _name()
    accepted = await post({"domain": name}, {"Idempotency-Key": "k-" + name})
    assert accepted.status_code == 202
    await api.provision(team, accepted.json()["data"])
    replay = await post({"domain": name}, {"Idempotency-Key": "k-" + name})
    assert replay.status_code == 201
    assert replay.json()["data"]["dns_records"]["mail_from"]["mx"]["priority"] == 10
    reused = await post({"domain": _name()}, {"Idempotency-Key": "k-" + name})
    assert (reused.status_code, reused.json()["error"]["code"]) == (409, "idempotency_conflict")
    taken = await post({"domain": name})
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "conflict")
    bad = await post({"domain": "https://" + name})
    assert (bad.status_code, bad.json()["error"]["reason"]) == (400, "domain_has_scheme")
    missing = await post({})
    assert missing.status_code == 400
    assert (await post({"domain": name, "colour": "red"})).status_code == 400
    assert (await post({"domain": name, "mode": "both"})).status_code == 400
    huge = {"domain": name, "metadata": {"x": "a" * 70_000}}
    assert (await post(huge)).status_code == 413
    not_json = await api.client.post(DOMAINS, content=b"{nope", headers=auth(key))
    assert conforms(path, "post", not_json).status_code == 400
    anonymous = await api.client.post(DOMAINS, json={"domain": _name()})
    assert conforms(path, "post", anonymous).status_code == 401
    forbidden = await api.client.post(
        DOMAINS, json={"domain": _name()}, headers=auth(readonly.plaintext)
    )
    assert conforms(path, "post", forbidden).status_code == 403
    send_only = await post({"domain": _name(), "mode": "send_only"})
    assert send_only.json()["data"]["mode"] == "send_only"


async def test_read_every_answer(api: ApiHarness, team: NewKey, readonly: NewKey) -> None:
    domain = await api.pending_domain(team)
    key = team.plaintext
    url = f"{DOMAINS}/{domain['id']}"

    got = conforms(ONE_DOMAIN, "get", await api.client.get(url, headers=auth(key)))
    assert got.status_code == 200
    etag = got.headers["etag"]
    same = await api.client.get(url, headers={**auth(key), "If-None-Match": etag})
    assert conforms(ONE_DOMAIN, "get", same).status_code == 304
    other = await api.client.get(url, headers={**auth(key), "If-None-Match": 'W/"0"'})
    assert conforms(ONE_DOMAIN, "get", other).status_code == 200
    gone = await api.client.get(f"{DOMAINS}/mdom_nope", headers=auth(key))
    assert conforms(ONE_DOMAIN, "get", gone).status_code == 404
    anonymous = await api.client.get(url)
    assert conforms(ONE_DOMAIN, "get", anonymous).status_code == 401

    listed = await api.client.get(DOMAINS, params={"limit": 1}, headers=auth(key))
    assert conforms(DOMAINS_PATH, "get", listed).status_code == 200
    assert listed.json()["pagination"]["has_more"] in (True, False)
    for params in ({"cursor": "nope"}, {"limit": 0}, {"status": "lost"}):
        refused = await api.client.get(DOMAINS, params=params, headers=auth(key))
        assert conforms(DOMAINS_PATH, "get", refused).status_code == 400
    assert conforms(DOMAINS_PATH, "get", await api.client.get(DOMAINS)).status_code == 401
    own = await api.client.get(DOMAINS, headers=auth(readonly.plaintext))
    assert conforms(DOMAINS_PATH, "get", own).status_code == 200

    zone_path = f"{ONE_DOMAIN}/zone-file"
    zone = await api.client.get(f"{url}/zone-file", headers=auth(key))
    assert conforms(zone_path, "get", zone).status_code == 200
    assert zone.headers["content-type"].startswith("text/plain")
    missing_zone = await api.client.get(f"{DOMAINS}/mdom_nope/zone-file", headers=auth(key))
    assert conforms(zone_path, "get", missing_zone).status_code == 404

    records_path = f"{ONE_DOMAIN}/dns-records"
    for fmt, status in (("json", 200), ("bind", 200), ("yaml", 400)):
        answer = await api.client.get(f"{url}/dns-records?format={fmt}", headers=auth(key))
        assert conforms(records_path, "get", answer).status_code == status

    timeline_path = f"{ONE_DOMAIN}/timeline"
    timeline = await api.client.get(f"{url}/timeline", headers=auth(key))
    assert conforms(timeline_path, "get", timeline).status_code == 200
    bad = await api.client.get(f"{url}/timeline?cursor=nope", headers=auth(key))
    assert conforms(timeline_path, "get", bad).status_code == 400


async def _verify_answered(api: ApiHarness, team: NewKey, domain: dict[str, Any]) -> httpx.Response:
    """POST verify, and answer it as the verifier would once the request is recorded."""
    # From a thread of its own: the test client's requests block the caller until answered.
    request = asyncio.create_task(
        api.concurrently(Request("POST", f"{DOMAINS}/{domain['id']}/verify", team.plaintext))
    )
    asked = None
    for _ in range(500):
        asked = await api.fetchval(
            "SELECT verify_event_id FROM domains WHERE public_id = $1", domain["id"]
        )
        if asked is not None:
            break
        await asyncio.sleep(0.01)
    assert asked is not None, "the verify request was never recorded"
    checks = [
        RecordCheck(record=kind, outcome=CheckOutcome.PASS, name=domain["domain"], expected="x")
        for kind in RecordKind
    ]
    answer_event = VerificationCompleted(
        correlation_id=unique("req_"),
        causation_id=asked,
        team_id=team.team_public_id,
        domain_id=domain["id"],
        domain=domain["domain"],
        trigger=VerificationTrigger.MANUAL,
        outcome=VerificationOutcome.PASSED,
        ses_dkim_status=DkimStatus.SUCCESS,
        checks=checks,
        checked_at=datetime.now(UTC),
        ses_identity=ses_identity(mail_from=DkimStatus.PENDING),
    )
    await api.call(api.handlers.on_verification_completed, answer_event)
    (answer,) = await request
    return answer


async def test_verify_and_delete_every_answer(
    api: ApiHarness, team: NewKey, readonly: NewKey
) -> None:
    verify_path, key = f"{ONE_DOMAIN}/verify", team.plaintext
    domain = await api.pending_domain(team)
    fresh = await api.client.get(f"{DOMAINS}/{domain['id']}", headers=auth(key))
    unread = conforms(ONE_DOMAIN, "get", fresh).json()["data"]
    assert {k: v for k, v in unread.items() if k.startswith("ses_") and k != "ses_dkim_status"} == {
        "ses_dkim_signing_enabled": None,  # nothing has read SES yet
        "ses_identity_verification_status": None,
        "ses_mail_from_status": None,
        "ses_verified_for_sending": None,
        "ses_identity_checked_at": None,
    }
    verified = conforms(verify_path, "post", await _verify_answered(api, team, domain))
    assert verified.status_code == 200
    answered = verified.json()["data"]
    assert set(answered["checks"]) >= {"mx", "mail_from_mx", "mail_from_spf"}
    # The check has just read SES: no ses_* value is null in its answer, nor on the domain.
    ses = {k: v for k, v in answered.items() if k.startswith("ses_")}
    assert None not in ses.values(), ses
    assert (ses["ses_identity_verification_status"], ses["ses_mail_from_status"]) == (
        "success",
        "pending",
    )
    read = await api.client.get(f"{DOMAINS}/{domain['id']}", headers=auth(key))
    shown = conforms(ONE_DOMAIN, "get", read).json()["data"]
    assert {k: v for k, v in shown.items() if k.startswith("ses_")} == ses

    late = await api.pending_domain(team)
    api_wait = api.settings.waits.verify_seconds
    assert api_wait > 0
    pending = await api.client.post(f"{DOMAINS}/{late['id']}/verify", headers=auth(key))
    assert conforms(verify_path, "post", pending).status_code == 503
    assert pending.json()["error"]["reason"] == "verification_pending"

    provisioning = await api.add_domain(key)
    busy = await api.client.post(f"{DOMAINS}/{provisioning['id']}/verify", headers=auth(key))
    assert conforms(verify_path, "post", busy).status_code == 409
    nowhere = await api.client.post(f"{DOMAINS}/mdom_nope/verify", headers=auth(key))
    assert conforms(verify_path, "post", nowhere).status_code == 404
    forbidden = await api.client.post(
        f"{DOMAINS}/{late['id']}/verify", headers=auth(readonly.plaintext)
    )
    assert conforms(verify_path, "post", forbidden).status_code == 403

    deleting = await api.client.delete(f"{DOMAINS}/{provisioning['id']}", headers=auth(key))
    assert conforms(ONE_DOMAIN, "delete", deleting).status_code == 409
    deleted = await api.client.delete(f"{DOMAINS}/{late['id']}", headers=auth(key))
    assert conforms(ONE_DOMAIN, "delete", deleted).status_code == 200
    assert deleted.json()["data"]["deleted"] is True
    again = await api.client.delete(f"{DOMAINS}/mdom_nope", headers=auth(key))
    assert conforms(ONE_DOMAIN, "delete", again).status_code == 404
    refused = await api.client.delete(f"{DOMAINS}/{domain['id']}", headers=auth(readonly.plaintext))
    assert conforms(ONE_DOMAIN, "delete", refused).status_code == 403


async def test_mailboxes_every_answer(api: ApiHarness, team: NewKey) -> None:
    key = team.plaintext
    domain = await api.verified_domain(team)
    one = "/api/v1/mailboxes/{public_id}"

    async def create(body: Any) -> httpx.Response:
        answer = await api.client.post(MAILBOXES, json=body, headers=auth(key))
        return conforms("/api/v1/mailboxes", "post", answer)

    made = await create({"address": f"agent@{domain['domain']}"})
    assert made.status_code == 201
    assert (await create({"address": f"agent@{domain['domain']}"})).status_code == 409
    assert (await create({"address": "not an address"})).status_code == 400
    listed = await api.client.get(MAILBOXES, headers=auth(key))
    assert conforms("/api/v1/mailboxes", "get", listed).status_code == 200
    url = f"{MAILBOXES}/{made.json()['data']['id']}"
    assert conforms(one, "get", await api.client.get(url, headers=auth(key))).status_code == 200
    in_use = await api.client.delete(f"{DOMAINS}/{domain['id']}", headers=auth(key))
    assert conforms(ONE_DOMAIN, "delete", in_use).status_code == 409
    assert (
        conforms(one, "delete", await api.client.delete(url, headers=auth(key))).status_code == 200
    )
    missing = await api.client.get(f"{MAILBOXES}/mbx_nope", headers=auth(key))
    assert conforms(one, "get", missing).status_code == 404


@pytest.fixture(scope="module")
async def throttled(
    database_url: Callable[[str], Awaitable[str]], amqp_url: str
) -> AsyncIterator[ApiHarness]:
    """An api whose teams may write one domain, then one an hour."""
    settings = api_settings(
        await database_url("apicontract429"),
        amqp_url,
        write_limit={"domain_write_rate": 1 / 3600, "domain_write_burst": 1},
    )
    async with AsyncTestClient(create_app(settings)) as client:
        yield ApiHarness(client, settings)


async def test_a_spent_budget_answers_as_documented(throttled: ApiHarness) -> None:
    team = await throttled.key()
    for status in (202, 429):
        answer = await throttled.client.post(
            DOMAINS, json={"domain": _name()}, headers=auth(team.plaintext)
        )
        assert conforms(DOMAINS_PATH, "post", answer).status_code == status
    assert answer.json()["error"]["retryable"] is True
    assert int(answer.headers["retry-after"]) > 0
