"""`Idempotency-Key` on POST /domains: a retry after a lost answer gets the same domain."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest

from domainflow.api.teams.service import NewKey
from domainflow.contracts import DomainDeprovisioned, Event
from domainflow.kit.aws import SesError
from domainflow.provisioner.domain import (
    Finish,
    ProvisioningSaga,
    SagaKind,
    Step,
    next_action,
    step_failed,
    step_started,
    step_succeeded,
    undo_started,
    undo_succeeded,
)
from domainflow.provisioner.handlers import classify
from tests.integration.api.harness import DOMAINS, ApiHarness, Request, auth, listening, unique

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


# --- a key whose domain is gone ---------------------------------------------------------------

#: What SES and the mail server's database say, in their own words: accounts, ARNs, tables.
_RAW_SES = (
    "User: arn:aws:iam::123456789012:user/domainflow is not authorized to perform: "
    "ses:VerifyDomainDkim on resource: arn:aws:ses:us-east-1:123456789012:identity/x"
)
_RAW_POSTFIX = 'duplicate key value violates unique constraint "virtual_domains_pkey"'


def _rolled_back(domain: dict[str, Any], team: NewKey, failure: BaseException) -> Event:
    """The provisioner's own answer to a step failing with `failure`, made by its code."""
    step = Step.MAILSERVER if isinstance(failure, asyncpg.PostgresError) else Step.SES_IDENTITY
    saga = ProvisioningSaga.start(
        kind=SagaKind.PROVISION, domain_id=domain["id"], team_id=team.team_public_id,
        domain=domain["domain"], region="us-east-1", mail_from_domain=None,
        correlation_id="req_x", causation_id=uuid.uuid4(), max_attempts=1,
    )  # fmt: skip
    if step is Step.SES_IDENTITY:
        saga = step_succeeded(step_started(saga, Step.MAILSERVER), Step.MAILSERVER)
    said = classify(failure, step)
    saga = step_failed(
        step_started(saga, step), step, said.message, retryable=said.retryable,
        no_effect=True, error_class=said.error_class,
    )  # fmt: skip
    if step is Step.SES_IDENTITY:
        saga = undo_succeeded(undo_started(saga, Step.MAILSERVER), Step.MAILSERVER)
    action = next_action(saga)
    assert isinstance(action, Finish)
    (event,) = action.events
    return event


@pytest.mark.parametrize(
    ("failure", "cause"),
    [
        (SesError("AccessDenied", _RAW_SES, retryable=False), "ses_identity: "),
        (asyncpg.UniqueViolationError(_RAW_POSTFIX), "mailserver: "),
    ],
    ids=["ses", "mailserver"],
)
async def test_a_failed_provisioning_names_the_step_and_error_class_never_the_providers_words(
    api: ApiHarness, team: NewKey, failure: BaseException, cause: str
) -> None:
    headers = {**auth(team.plaintext), "Idempotency-Key": str(uuid.uuid4())}
    body = {"domain": f"{unique('leak')}.example.com"}
    first = await api.client.post(DOMAINS, json=body, headers=headers)
    assert first.status_code == 202, first.text
    domain = first.json()["data"]
    async with listening(api, "domain.status_changed", "domain.deleted") as heard:
        await api.call(api.handlers.on_rolled_back, _rolled_back(domain, team, failure))
        public = [json.loads((await asyncio.wait_for(heard.get(), 30)).body) for _ in range(2)]

    failed = await api.client.post(DOMAINS, json=body, headers=headers)  # the lost answer
    assert failed.status_code == 503, failed.text
    error = failed.json()["error"]
    assert error["reason"] == "provisioning_failed"
    assert error["details"]["cause"].startswith(cause)
    said = error["details"]["cause"]
    assert (
        "ses:AccessDenied" if "ses" in cause else "mailserver:refused:UniqueViolationError"
    ) in said
    for raw in ("123456789012", "arn:aws", "virtual_domains_pkey", "duplicate key"):
        assert raw not in failed.text
        assert all(raw not in json.dumps(event) for event in public)
    # Told once: the key is spent, and the same request starts afresh.
    again = await api.client.post(DOMAINS, json=body, headers=headers)
    assert again.status_code == 202, again.text
    assert again.json()["data"]["id"] != domain["id"]


async def test_a_key_whose_domain_was_deleted_says_so_once_then_starts_afresh(
    api: ApiHarness, team: NewKey
) -> None:
    headers = {**auth(team.plaintext), "Idempotency-Key": str(uuid.uuid4())}
    body = {"domain": f"{unique('gone')}.example.com"}
    first = await api.client.post(DOMAINS, json=body, headers=headers)
    assert first.status_code == 202, first.text
    domain = first.json()["data"]
    await api.provision(team, domain)
    deleted = await api.client.delete(f"{DOMAINS}/{domain['id']}", headers=auth(team.plaintext))
    assert deleted.status_code == 200, deleted.text
    await api.call(
        api.handlers.on_deprovisioned,
        DomainDeprovisioned(
            correlation_id="req_d", team_id=team.team_public_id, domain_id=domain["id"],
            domain=domain["domain"],
        ),
    )  # fmt: skip
    assert await api.status_of(domain["id"]) == "deleted"

    told = await api.client.post(DOMAINS, json=body, headers=headers)
    assert told.status_code == 409, told.text
    error = told.json()["error"]
    assert (error["code"], error["reason"]) == ("conflict", "domain_deleted")
    assert error["details"] == {"id": domain["id"]}
    assert "deleted" in error["message"]

    again = await api.client.post(DOMAINS, json=body, headers=headers)
    assert again.status_code == 202, again.text
    assert again.json()["data"]["id"] != domain["id"]
    replayed = await api.client.post(DOMAINS, json=body, headers=headers)
    assert replayed.json()["data"]["id"] == again.json()["data"]["id"]  # the key is new again
