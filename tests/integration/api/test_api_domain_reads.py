"""Reading domains and following requests: pages, filters, request ids, events, zone fragments."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest

from domainflow.api.teams.service import NewKey
from domainflow.contracts import VerificationOutcome
from domainflow.contracts.topology import EVENTS_EXCHANGE
from tests.integration.api.harness import DOMAINS, MAILBOXES, ApiHarness, auth, unique

pytestmark = pytest.mark.integration


async def _walk(api: ApiHarness, key: str, query: str, limit: int) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params = f"?limit={limit}{query}" + (f"&cursor={cursor}" if cursor else "")
        response = await api.client.get(DOMAINS + params, headers=auth(key))
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["data"])
        page = body["pagination"]
        assert page["has_more"] is (page["next_cursor"] is not None)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "the cursor never ran out"


@pytest.mark.parametrize("limit", [1, 3, 7, 8, 100])
async def test_cursor_pagination_walks_every_domain_exactly_once(
    api: ApiHarness, limit: int
) -> None:
    team = await api.key()
    created = [(await api.add_domain(team.plaintext))["id"] for _ in range(7)]
    await api.add_domain((await api.key()).plaintext)  # another team's, never listed

    pages = await _walk(api, team.plaintext, "", limit)

    seen = [d["id"] for page in pages for d in page]
    assert seen == created[::-1]  # each once, newest first
    assert all(len(page) == limit for page in pages[:-1])
    assert 0 < len(pages[-1]) <= limit


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("?cursor=not-a-cursor", "invalid_cursor"),
        ("?cursor=" + base64.urlsafe_b64encode(b"x:5").decode().rstrip("="), "invalid_cursor"),
        ("?limit=0", "invalid_request"),
        ("?limit=101", "invalid_request"),
        ("?limit=ten", "invalid_request"),
    ],
)
async def test_bad_page_parameters_are_400s(
    api: ApiHarness, team: NewKey, query: str, code: str
) -> None:
    response = await api.client.get(DOMAINS + query, headers=auth(team.plaintext))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["reason"] == code


async def test_a_cursor_beyond_any_id_is_a_400_not_a_500(api: ApiHarness, team: NewKey) -> None:
    huge = base64.urlsafe_b64encode(b"d:99999999999999999999").decode().rstrip("=")
    response = await api.client.get(f"{DOMAINS}?cursor={huge}", headers=auth(team.plaintext))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["reason"] == "invalid_cursor"


async def test_status_filter(api: ApiHarness) -> None:
    team = await api.key()
    provisioning = await api.add_domain(team.plaintext)
    pending = await api.pending_domain(team)
    verified = await api.verified_domain(team)
    failed = await api.pending_domain(team)
    # A never-verified domain stays pending on failures; only a degraded one goes to failed.
    await api.verification(team, failed, VerificationOutcome.PASSED)
    for _ in range(3):
        await api.verification(team, failed, VerificationOutcome.FAILED)
    assert await api.status_of(failed["id"]) == "failed"

    async def ids(status: str) -> list[str]:
        pages = await _walk(api, team.plaintext, f"&status={status}", 2)
        return [d["id"] for page in pages for d in page]

    assert await ids("provisioning") == [provisioning["id"]]
    assert await ids("pending") == [pending["id"]]
    assert await ids("verified") == [verified["id"]]
    assert await ids("failed") == [failed["id"]]
    assert await ids("pending,verified") == [verified["id"], pending["id"]]
    assert await ids("deleting") == []
    everything = await _walk(api, team.plaintext, "", 100)
    assert len(everything[0]) == 4


@pytest.mark.parametrize("status", ["bogus", "deleted", "verified,nope", "VERIFIED"])
async def test_unknown_statuses_are_refused(api: ApiHarness, team: NewKey, status: str) -> None:
    response = await api.client.get(f"{DOMAINS}?status={status}", headers=auth(team.plaintext))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["reason"] == "invalid_request"


# --- request ids -------------------------------------------------------------------------


@pytest.mark.parametrize("sent", ["req_abc123", "trace-7f3a.9:1", "A" * 128, "op_forged"])
async def test_a_clients_request_id_is_kept_beside_ours_never_in_its_place(
    api: ApiHarness, team: NewKey, sent: str
) -> None:
    for response in (
        await api.client.get(DOMAINS, headers={**auth(team.plaintext), "X-Request-Id": sent}),
        await api.client.get(
            f"{DOMAINS}/mdom_nope", headers={**auth(team.plaintext), "X-Request-Id": sent}
        ),
        await api.client.get(DOMAINS, headers={"X-Request-Id": sent}),  # even a 401
    ):
        ours = response.headers["x-request-id"]
        assert ours != sent
        assert ours.startswith("req_")
        assert response.json()["meta"] == {"request_id": ours, "client_request_id": sent}


@pytest.mark.parametrize(
    "sent",
    ["", "has space", "-leading-dash", "A" * 129, "semi;colon", 'quote"d', "ü-nicode"],
)
async def test_a_malformed_request_id_is_not_kept(api: ApiHarness, team: NewKey, sent: str) -> None:
    headers = [(k.encode(), v.encode()) for k, v in auth(team.plaintext).items()]
    response = await api.client.get(DOMAINS, headers=[*headers, (b"x-request-id", sent.encode())])

    assert response.status_code == 200
    given = response.headers["x-request-id"]
    assert given != sent
    assert given.startswith("req_")
    assert response.json()["meta"] == {"request_id": given}


async def test_each_request_gets_its_own_id(api: ApiHarness, team: NewKey) -> None:
    ids = {
        (await api.client.get(DOMAINS, headers=auth(team.plaintext))).headers["x-request-id"]
        for _ in range(5)
    }
    assert len(ids) == 5
    assert all(i.startswith("req_") for i in ids)


# --- the event a POST publishes ----------------------------------------------------------


@pytest.fixture
async def requested_events(api: ApiHarness) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A private queue on the events exchange of the api's vhost, bound to domain.requested."""
    connection = await aio_pika.connect_robust(api.settings.broker.amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(EVENTS_EXCHANGE)  # the api declared it
        queue = await channel.declare_queue(
            f"test.api.{unique()}", exclusive=True, auto_delete=True
        )
        await queue.bind(exchange, routing_key="domain.requested")
        yield queue
    finally:
        await connection.close()


async def _next_for(
    queue: aio_pika.abc.AbstractQueue, domain_id: str, within: float = 10.0
) -> tuple[aio_pika.abc.AbstractIncomingMessage, dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        message = await queue.get(fail=False)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        await message.ack()
        body: dict[str, Any] = json.loads(message.body)
        if body.get("domain_id") == domain_id:
            return message, body
    raise AssertionError(f"no domain.requested for {domain_id} within {within}s")


async def test_post_publishes_domain_requested_with_the_request_id(
    api: ApiHarness, team: NewKey, requested_events: aio_pika.abc.AbstractQueue
) -> None:
    name = f"{unique('evt')}.example.com"

    # A client's id posing as an operator's labels nothing: the work carries ours.
    response = await api.client.post(
        DOMAINS,
        json={"domain": name, "region": "eu-west-1"},
        headers={**auth(team.plaintext), "X-Request-Id": "op_forged"},
    )

    assert response.status_code == 202, response.text
    request_id = response.headers["x-request-id"]
    assert request_id.startswith("req_")
    assert response.json()["meta"]["client_request_id"] == "op_forged"
    assert response.headers["location"] == f"{DOMAINS}/{response.json()['data']['id']}"
    domain_id = response.json()["data"]["id"]
    message, body = await _next_for(requested_events, domain_id)
    assert body["type"] == "domain.requested"
    assert body["correlation_id"] == request_id
    assert message.correlation_id == request_id
    assert message.routing_key == "domain.requested"
    assert body["team_id"] == team.team_public_id
    assert body["domain"] == name
    assert body["region"] == "eu-west-1"
    assert message.message_id == body["event_id"]
    # Stored with the domain too, so the whole story can be found from the request id.
    stored = await api.fetchval("SELECT request_id FROM domains WHERE public_id = $1", domain_id)
    assert stored == request_id
    requested_by = await api.fetchval(
        "SELECT t.request_id FROM domain_timeline t JOIN domains d ON d.id = t.domain_id"
        " WHERE d.public_id = $1",
        domain_id,
    )
    assert requested_by == request_id


async def test_a_refused_post_publishes_nothing(
    api: ApiHarness, team: NewKey, requested_events: aio_pika.abc.AbstractQueue
) -> None:
    taken = await api.add_domain(team.plaintext)
    await _next_for(requested_events, taken["id"])
    duplicate = await api.client.post(
        DOMAINS, json={"domain": taken["domain"]}, headers=auth(team.plaintext)
    )
    bad = await api.client.post(DOMAINS, json={"domain": "co.uk"}, headers=auth(team.plaintext))
    assert (duplicate.status_code, bad.status_code) == (409, 400)
    marker = await api.add_domain(team.plaintext)  # published after the refusals, if any

    await _next_for(requested_events, marker["id"])

    assert await requested_events.get(fail=False) is None


# --- records, and what a provisioning domain refuses -------------------------------------


async def test_dns_records_as_a_bind_fragment(api: ApiHarness, team: NewKey) -> None:
    domain = await api.pending_domain(team)
    name = domain["domain"]

    response = await api.client.get(
        f"{DOMAINS}/{domain['id']}/dns-records?format=bind", headers=auth(team.plaintext)
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = [line for line in response.text.splitlines() if line and not line.startswith(";")]
    records = [line.split() for line in lines]
    assert [name + ".", "300", "IN", "MX", "10", "mail.sendmux.ai."] in records
    assert any(r[0] == f"{name}." and r[3] == "TXT" and "v=spf1" in r[4] for r in records)
    assert any(r[0] == f"_dmarc.{name}." and r[3] == "TXT" for r in records)
    assert sum(r[3] == "CNAME" and r[0].endswith(f"._domainkey.{name}.") for r in records) == 3
    verification = f'"sendmux-verify={team.team_public_id}"'
    assert [f"_sendmux.{name}.", "300", "IN", "TXT", verification] in records

    as_json = await api.client.get(
        f"{DOMAINS}/{domain['id']}/dns-records", headers=auth(team.plaintext)
    )
    assert as_json.status_code == 200
    assert len(as_json.json()["data"]["dkim"]) == 3
    other = await api.client.get(
        f"{DOMAINS}/{domain['id']}/dns-records?format=xml", headers=auth(team.plaintext)
    )
    assert other.status_code == 400


async def test_a_provisioning_domain_refuses_verify_and_delete(
    api: ApiHarness, team: NewKey
) -> None:
    domain = await api.add_domain(team.plaintext)
    path = f"{DOMAINS}/{domain['id']}"

    verify = await api.client.post(f"{path}/verify", headers=auth(team.plaintext))
    delete = await api.client.delete(path, headers=auth(team.plaintext))

    assert verify.status_code == 409
    assert verify.json()["error"]["reason"] == "domain_provisioning"
    assert delete.status_code == 409
    assert delete.json()["error"]["reason"] == "domain_provisioning"
    assert await api.status_of(domain["id"]) == "provisioning"


async def test_verify_of_a_pending_domain_waits_then_answers_503_once(
    api: ApiHarness, team: NewKey
) -> None:
    domain = await api.pending_domain(team)
    path = f"{DOMAINS}/{domain['id']}/verify"

    sql = "SELECT verify_event_id FROM domains WHERE public_id = $1"

    first = await api.client.post(path, headers=auth(team.plaintext))
    asked = await api.fetchval(sql, domain["id"])
    second = await api.client.post(path, headers=auth(team.plaintext))

    assert (first.status_code, second.status_code) == (503, 503)
    assert first.json()["error"]["reason"] == "verification_pending"
    assert first.json()["error"]["retryable"] is True
    assert first.headers["retry-after"] == "5"
    # One verification at a time: the second request joined the first.
    assert asked is not None
    assert await api.fetchval(sql, domain["id"]) == asked


async def test_a_deleting_domain_refuses_verify(api: ApiHarness, team: NewKey) -> None:
    domain = await api.pending_domain(team)
    path = f"{DOMAINS}/{domain['id']}"
    deleting = await api.client.delete(path, headers=auth(team.plaintext))
    assert deleting.status_code == 200
    assert deleting.json()["data"]["deleted"] is True
    assert deleting.json()["data"]["state"] == "deleting"

    verify = await api.client.post(f"{path}/verify", headers=auth(team.plaintext))

    assert verify.status_code == 409
    assert verify.json()["error"]["reason"] == "domain_deleting"
    again = await api.client.delete(path, headers=auth(team.plaintext))
    assert again.status_code == 200  # a repeated DELETE answers like the first
    assert again.json()["data"] == deleting.json()["data"]


async def test_a_read_never_sends_the_kept_answer_of_a_domain_changed_since(
    api: ApiHarness, team: NewKey
) -> None:
    """A replica keeps the last answer it sent for a domain; every read asks where the domain
    stands first, so a change made anywhere (here: in SQL, as another replica's would be) is
    seen by the next read."""
    domain = await api.verified_domain(team)
    url, key = f"{DOMAINS}/{domain['id']}", auth(team.plaintext)

    async def read() -> tuple[dict[str, Any], str]:
        response = await api.client.get(url, headers=key)
        assert response.status_code == 200, response.text
        return response.json()["data"], response.headers["etag"]

    first, first_tag = await read()
    assert await read() == (first, first_tag)

    await api.fetchval(
        "UPDATE domains SET external_id = 'set-behind' WHERE public_id = $1", domain["id"]
    )
    changed, changed_tag = await read()
    assert changed["external_id"] == "set-behind"
    assert changed_tag != first_tag

    made = await api.client.post(
        MAILBOXES, json={"address": f"ceo@{domain['domain']}"}, headers=key
    )
    assert made.status_code == 201, made.text
    counted, _ = await read()
    assert counted["mailbox_count"] == changed["mailbox_count"] + 1

    # Kept or not, a domain is shown to its own team only, and only while it lives.
    other = await api.key()
    refused = await api.client.get(url, headers=auth(other.plaintext))
    assert refused.status_code == 404, refused.text
    await api.fetchval("UPDATE domains SET status = 'deleted' WHERE public_id = $1", domain["id"])
    gone = await api.client.get(url, headers=key)
    assert gone.status_code == 404, gone.text


async def test_a_replica_keeping_no_answers_shows_the_same_domain(
    api: ApiHarness, team: NewKey
) -> None:
    domain = await api.verified_domain(team)
    url, key = f"{DOMAINS}/{domain['id']}", auth(team.plaintext)
    kept = await api.client.get(url, headers=key)
    app_state = api.app.state
    keeping = app_state.shown_domains
    app_state.shown_domains = type(keeping)(0)
    try:
        built = await api.client.get(url, headers=key)
    finally:
        app_state.shown_domains = keeping
    assert built.json()["data"] == kept.json()["data"]
    assert built.headers["etag"] == kept.headers["etag"]
