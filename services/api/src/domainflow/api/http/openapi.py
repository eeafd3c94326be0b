"""The OpenAPI document as served: Litestar's generated one, refined to say what is answered.

Litestar generates the paths, parameters, request bodies and success envelopes from the
controllers' types. What it cannot see is added here, once, to the dict its OpenAPI plugin
caches (so /schema/openapi.json and the interactive page serve the same refined document):
every error status each operation can answer (one `ErrorResponse` envelope, `code` an enum),
the headers (`ETag`, `If-None-Match`, `Idempotency-Key`, `Retry-After`, `Location`), the
rules the runtime checks by hand (`domain`'s pattern, `format`'s values), readable component
names and examples. `OPERATIONS` is the table of who answers what; the contract tests hold
every answer to it.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from domainflow.api.domains.schemas import DOMAIN_PATTERN as _WHOLE_NAME

Schema = dict[str, Any]

#: Every `error.code` a client can branch on (Sendmux's Management API).
ERROR_CODES = [
    "invalid_parameter",
    "missing_parameter",
    "authentication_required",
    "insufficient_permissions",
    "not_found",
    "conflict",
    "limit_exceeded",
    "idempotency_conflict",
    "payload_too_large",
    "validation_error",
    "rate_limit_exceeded",
    "service_unavailable",
    "internal_error",
]

#: The longest name a domain may have here: its MAIL FROM subdomain (`send.` by default)
#: must still fit in 253 octets.
LONGEST_DOMAIN = 248

#: `domain`'s pattern as documented: the runtime's, without its length lookahead (`maxLength`
#: says that, and a lookahead makes every generator of matching names crawl).
DOMAIN_PATTERN = _WHOLE_NAME.replace("(?=.{1,253}$)", "")

_RETRY_AFTER: Schema = {
    "description": "Whole seconds to wait before retrying.",
    "required": True,
    "schema": {"type": "string", "pattern": r"^[0-9]+$"},
}
_LOCATION: Schema = {
    "description": "Where the resource can be read.",
    "required": True,
    "schema": {"type": "string"},
}
_ETAG: Schema = {
    "description": "A weak validator of the representation; send it as If-None-Match.",
    "required": True,
    "schema": {"type": "string", "pattern": r'^W/"[0-9a-f]+"$'},
}

#: status -> (component name, description, example code, example reason, example message)
_ERRORS: dict[int, tuple[str, str, str, str, str]] = {
    400: (
        "BadRequest",
        "The request was refused: `error.param` names the field, `error.reason` why.",
        "invalid_parameter",
        "domain_has_scheme",
        'Send the bare domain name "mail.acme.com", without "https://".',
    ),
    401: (
        "Unauthorized",
        "No API key, or one that is unknown or revoked.",
        "authentication_required",
        "unauthorized",
        "Send your API key as 'Authorization: Bearer <key>'.",
    ),
    403: (
        "Forbidden",
        "The key lacks the permission this operation needs.",
        "insufficient_permissions",
        "forbidden",
        "This API key lacks the 'domain.create' permission.",
    ),
    404: (
        "NotFound",
        "No such resource in the caller's team.",
        "not_found",
        "domain_not_found",
        "No domain with id 'mdom_x'.",
    ),
    409: (
        "Conflict",
        "The resource's state forbids it now, the name is held, or an Idempotency-Key was "
        "reused with another body (`idempotency_conflict`).",
        "conflict",
        "domain_exists",
        "Your team already added mail.acme.com (id mdom_x).",
    ),
    413: (
        "PayloadTooLarge",
        "The body is larger than the api reads.",
        "payload_too_large",
        "request_too_large",
        "The request body is too large. Domain requests are a few hundred bytes.",
    ),
    415: (
        "UnsupportedMediaType",
        "The body is not JSON.",
        "invalid_parameter",
        "unsupported_media_type",
        "Send the body as application/json.",
    ),
    422: (
        "UnprocessableEntity",
        "The request is well formed but asks for something that cannot be done.",
        "validation_error",
        "mode_downgrade",
        "A send_receive domain cannot become send_only.",
    ),
    429: (
        "TooManyRequests",
        "The team's budget of domain writes is spent; retry after `Retry-After` seconds.",
        "rate_limit_exceeded",
        "rate_limited",
        "Your team is adding, verifying or deleting domains faster than 5 a second; retry in 1 s.",
    ),
    500: (
        "InternalError",
        "A fault on our side; the request id lets the operator find it.",
        "internal_error",
        "internal_error",
        "Something went wrong on our side; the request id lets us find out what.",
    ),
    503: (
        "ServiceUnavailable",
        "The work outlived its wait (provisioning failed and was undone, or a check is still "
        "running); retry after `Retry-After` seconds.",
        "service_unavailable",
        "verification_pending",
        "The check is still running; retry in a few seconds to get its answer.",
    ),
}

#: Every status each operation can answer beyond its success (401 and 403 on every guarded
#: route, 400 where input can be refused, 413/415 where a body is read, 500 anywhere).
_GUARDED = (401, 403, 500)
OPERATIONS: dict[str, tuple[int, ...]] = {
    "createDomain": (400, 409, 413, 415, 429, 503, *_GUARDED),
    "listDomains": (400, *_GUARDED),
    "getDomain": (404, *_GUARDED),
    "getDomainZoneFile": (404, *_GUARDED),
    "getDomainDnsRecords": (400, 404, *_GUARDED),
    "getTimeline": (400, 404, *_GUARDED),
    "verifyDomain": (404, 409, 429, 503, *_GUARDED),
    "deleteDomain": (404, 409, 429, 503, *_GUARDED),
    # A stale If-Match is 409 precondition_failed (issue 9 lists no 412 for it).
    "patchDomain": (400, 404, 409, 413, 415, 422, 429, *_GUARDED),
    "createMailbox": (400, 409, 413, 415, *_GUARDED),
    "listMailboxes": (400, *_GUARDED),
    "getMailbox": (404, *_GUARDED),
    "deleteMailbox": (404, *_GUARDED),
    # 409: refused (holder proven, TXT missing, mailboxes, busy, not held, own name, key
    # reused); 503: the DNS could not answer.
    "claimDomain": (400, 409, 413, 415, 429, 503, *_GUARDED),
    "getClaim": (404, *_GUARDED),
}

_SECURITY = "bearerAuth"

_META = {"request_id": "req_3f9c2a"}
_RECORDS = {
    "mx": [{"priority": 10, "target": "mail.sendmux.ai", "name": "mail.acme.com"}],
    "spf": {
        "name": "mail.acme.com",
        "value": "v=spf1 include:amazonses.com include:sendmux.ai ~all",
    },
    "dmarc": {"name": "_dmarc.mail.acme.com", "value": "v=DMARC1; p=quarantine"},
    "dkim": [
        {"name": f"{t * 32}._domainkey.mail.acme.com", "value": f"{t * 32}.dkim.amazonses.com"}
        for t in "abc"
    ],
    "verification": {"name": "_sendmux.mail.acme.com", "value": "sendmux-verify=team_7k2m"},
    "mail_from": {
        "mx": {
            "name": "send.mail.acme.com",
            "priority": 10,
            "target": "feedback-smtp.us-east-1.amazonses.com",
        },
        "spf": {"name": "send.mail.acme.com", "value": "v=spf1 include:amazonses.com ~all"},
    },
}
#: A domain as createDomain answers it (the unit tests validate it against the schema).
DOMAIN_EXAMPLE: Schema = {
    "id": "mdom_8d2kq0x1m4v7c9p3r5t6w8y0",
    "domain": "mail.acme.com",
    "mode": "send_receive",
    "verification_status": "pending",
    "created_at": "2026-04-15T10:00:00Z",
    "verified_at": None,
    "mailbox_count": 0,
    "ses_dkim_status": "pending",
    "ses_dkim_signing_enabled": None,  # null until the verifier first reads SES
    "ses_identity_verification_status": None,
    "ses_mail_from_status": None,
    "ses_verified_for_sending": None,
    "ses_identity_checked_at": None,
    "dns_records": _RECORDS,
    "state": "pending",
    "last_checked_at": None,
    "verification_in_progress": False,
    "region": "us-east-1",
    "external_id": None,
    "metadata": {},
    "mail_from_domain": "send.mail.acme.com",
    "last_checks": None,
    "display_domain": None,
    "warnings": [],
}


def openapi_config() -> OpenAPIConfig:
    """What Litestar's own options can say: the bearer scheme, and the interactive page."""
    return OpenAPIConfig(
        title="domainflow",
        version="1.0.0",
        description=(
            "Custom sending domains: add, verify, re-verify, delete. Every answer travels in "
            "`{ok, data, meta: {request_id}}`; every refusal in `{ok: false, error, meta}`."
        ),
        path="/schema",
        security=[{_SECURITY: []}],
        components=Components(
            security_schemes={
                _SECURITY: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An API key: `Authorization: Bearer smx_...`.",
                )
            }
        ),
        render_plugins=[ScalarRenderPlugin()],
        use_handler_docstrings=True,
    )


def refined_document(app: Litestar) -> Schema:
    """The document the app serves, refined in place (the plugin caches it) exactly once."""
    schema = app.plugins.get(OpenAPIPlugin).provide_openapi_schema()
    if not schema.get("x-refined"):
        refine(schema)
        schema["x-refined"] = True
    return schema


def refine_on_startup(app: Litestar) -> None:
    refined_document(app)


def document(app: Litestar) -> str:
    """The document as committed in docs/openapi.json."""
    return json.dumps(refined_document(app), indent=2, sort_keys=True) + "\n"


# --- the refinement -------------------------------------------------------------------------


def refine(schema: Schema) -> None:
    components = schema.setdefault("components", {})
    schemas: Schema = components.setdefault("schemas", {})
    _rename_components(schema, schemas)
    schemas["ErrorResponse"] = _error_response()
    schemas["ErrorDetail"] = _error_detail()
    schemas["DnsRecordsResponse"] = _envelope("DnsRecordsResponse", "DnsRecords")
    components["responses"] = {
        name: _error_answer(status) for status, (name, *_) in _ERRORS.items()
    }
    _refine_requests(schemas)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "operationId" in operation:
                _refine_operation(path, method, operation)
    schema["servers"] = [{"url": "/", "description": "This api."}]


_GENERIC = re.compile(r"^(Envelope|Listing)_[a-z_.]+\.([A-Za-z]+)_$")


def _readable(name: str) -> str:
    """`Envelope_domainflow.api.domains.schemas.DomainView_` -> `DomainResponse`."""
    if match := _GENERIC.match(name):
        kind, inner = match.groups()
        inner = inner.removesuffix("View")
        return f"{inner}ListResponse" if kind == "Listing" else f"{inner}Response"
    if name.endswith("View") and name != "View":
        return name.removesuffix("View")
    return name


def _rename_components(schema: Schema, schemas: Schema) -> None:
    renames = {old: _readable(old) for old in schemas}
    for old, new in renames.items():
        if old != new:
            body = schemas.pop(old)
            body["title"] = new
            schemas[new] = body
    prefix = "#/components/schemas/"
    refs = {prefix + old: prefix + new for old, new in renames.items()}

    def rewrite(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref in refs:
                node["$ref"] = refs[ref]
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for value in node:
                rewrite(value)

    rewrite(schema)


def _error_detail() -> Schema:
    return {
        "type": "object",
        "title": "ErrorDetail",
        "required": ["code", "message", "retryable", "reason"],
        "properties": {
            "code": {"type": "string", "enum": ERROR_CODES},
            "message": {"type": "string", "description": "What went wrong and what to do."},
            "retryable": {
                "type": "boolean",
                "description": "true for 429 and 5xx: the same request may succeed later.",
            },
            "reason": {
                "type": "string",
                "description": "Our precise reason (`domain_has_scheme`, `domain_in_use`...).",
            },
            "param": {"type": "string", "description": "The offending field or header."},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["code", "field", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "field": {"type": "string"},
                        "message": {"type": "string"},
                    },
                },
            },
            "details": {"type": "object", "additionalProperties": True},
            "doc_url": {"type": "string"},
        },
    }


def _envelope(title: str, data: str) -> Schema:
    return {
        "type": "object",
        "title": title,
        "required": ["ok", "data", "meta"],
        "properties": {
            "ok": {"type": "boolean"},
            "data": {"$ref": f"#/components/schemas/{data}"},
            "meta": {"$ref": "#/components/schemas/Meta"},
        },
    }


def _error_response() -> Schema:
    return {
        "type": "object",
        "title": "ErrorResponse",
        "required": ["ok", "error", "meta"],
        "properties": {
            "ok": {"type": "boolean", "enum": [False]},
            "error": {"$ref": "#/components/schemas/ErrorDetail"},
            "meta": {"$ref": "#/components/schemas/Meta"},
        },
    }


def _error_answer(status: int) -> Schema:
    _, description, code, reason, message = _ERRORS[status]
    error: Schema = {
        "code": code,
        "message": message,
        "retryable": status == 429 or status >= 500,
        "reason": reason,
    }
    if status == 400:
        error["param"] = "domain"
        error["errors"] = [{"code": reason, "field": "domain", "message": message}]
    answer: Schema = {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorResponse"},
                "example": {"ok": False, "error": error, "meta": {"request_id": "req_3f9c2a"}},
            }
        },
    }
    if status in (429, 503):
        answer["headers"] = {"Retry-After": _RETRY_AFTER}
    return answer


def _refine_requests(schemas: Schema) -> None:
    create = schemas.get("CreateDomain")
    if create is None:
        return
    create["additionalProperties"] = False
    create["required"] = ["domain"]
    props = create["properties"]
    props["domain"] = {
        "type": "string",
        "pattern": DOMAIN_PATTERN,
        "maxLength": LONGEST_DOMAIN,
        "description": "The bare name to send from (IDNA names as A-labels), lowercase.",
        "example": "mail.acme.com",
    }
    props["mode"] = {
        "type": "string",
        "enum": ["send_only", "send_receive"],
        "default": "send_receive",
        "description": "send_only: no MX, no mailboxes; send_receive: also receives mail.",
    }
    props["region"] = {
        "type": "string",
        "pattern": r"^[a-z]{2}(-gov)?-[a-z]+-\d{1,2}$",
        "description": "The SES region (the operator's default when absent).",
        "example": "us-east-1",
    }
    props["external_id"] = {"type": "string", "minLength": 1, "maxLength": 255}
    props["metadata"] = {
        "type": "object",
        "additionalProperties": True,
        "description": "Yours, kept as sent; at most 8 KiB of JSON.",
    }
    props["mail_from"] = {
        "type": "string",
        "pattern": r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
        "description": "The MAIL FROM label (the operator's default, e.g. `send`, when absent).",
        "example": "bounce",
    }
    # Null means absent for every optional field, as the runtime reads it.
    for optional in ("mode", "region", "external_id", "metadata", "mail_from"):
        props[optional]["type"] = [props[optional]["type"], "null"]
    create["example"] = {"domain": "mail.acme.com", "mode": "send_receive"}
    mailbox = schemas.get("CreateMailbox")
    if mailbox is not None:
        mailbox["additionalProperties"] = False
        mailbox["required"] = ["address"]
        mailbox["properties"]["address"] = {
            "type": "string",
            "format": "email",
            "example": "agent@mail.acme.com",
        }


def _refine_operation(path: str, method: str, operation: Schema) -> None:
    op_id = operation["operationId"]
    errors = OPERATIONS.get(op_id, (500,))
    responses: Schema = operation.setdefault("responses", {})
    responses.pop("400", None)  # Litestar's own shape: ours is ErrorResponse
    for status in errors:
        responses[str(status)] = {"$ref": f"#/components/responses/{_ERRORS[status][0]}"}
    for answer in responses.values():
        if isinstance(answer, dict) and answer.get("headers") == {}:
            del answer["headers"]
    operation["security"] = [{_SECURITY: []}]
    for parameter in operation.get("parameters", []):
        _refine_parameter(parameter)
    _OPERATION_REFINEMENTS.get(op_id, _nothing)(operation)


def _refine_parameter(parameter: Schema) -> None:
    # `str | None` query parameters come out as oneOf[string, null]; a query string has no null.
    schema = parameter.get("schema", {})
    if "oneOf" in schema and {"type": "null"} in schema["oneOf"]:
        (kept,) = [s for s in schema["oneOf"] if s != {"type": "null"}]
        parameter["schema"] = kept
    if parameter["name"] == "cursor":
        parameter["description"] = "next_cursor from the previous page (opaque)."
    if parameter["name"] == "public_id":
        parameter["description"] = "The resource's id, as answered by create or list."


def _nothing(_: Schema) -> None:
    return None


def _success(operation: Schema, status: str = "200") -> Schema:
    answer: Schema = operation["responses"][status]
    return answer


def _example(answer: Schema, example: Any) -> None:
    for media in answer.get("content", {}).values():
        media["example"] = example


def _create_domain(operation: Schema) -> None:
    created = _success(operation, "201")
    _example(created, {"ok": True, "data": DOMAIN_EXAMPLE, "meta": _META})
    created["description"] = "Provisioned on the mail server and SES: place the records."
    created["headers"] = {"Location": _LOCATION}
    # What a client (and schemathesis' stateful phase) does next with the id it was given.
    created["links"] = {
        link: {"operationId": target, "parameters": {"public_id": "$response.body#/data/id"}}
        for link, target in (
            ("GetDomain", "getDomain"),
            ("VerifyDomain", "verifyDomain"),
            ("DeleteDomain", "deleteDomain"),
            ("GetDomainZoneFile", "getDomainZoneFile"),
            ("GetDomainDnsRecords", "getDomainDnsRecords"),
            ("GetTimeline", "getTimeline"),
        )
    }
    accepted = copy.deepcopy(created)
    accepted["description"] = (
        "Accepted: provisioning outlived the wait; `state` is `provisioning`. Poll `Location`."
    )
    operation["responses"]["202"] = accepted
    operation.setdefault("parameters", []).append(
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "Retry safely: the same key with the same body answers the same "
            "domain; with another body it is 409 idempotency_conflict.",
            "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,255}$"},
        }
    )


def _get_domain(operation: Schema) -> None:
    _success(operation)["headers"] = {"ETag": _ETAG}
    _example(_success(operation), {"ok": True, "data": DOMAIN_EXAMPLE, "meta": _META})
    operation["responses"]["304"] = {
        "description": "Not modified: If-None-Match names the current ETag. No body.",
        "headers": {"ETag": _ETAG},
    }
    operation.setdefault("parameters", []).append(
        {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "description": "An ETag from an earlier answer: 304 while it is still current.",
            "schema": {"type": "string"},
        }
    )


def _zone_file(operation: Schema) -> None:
    _success(operation)["content"] = {
        "text/plain": {
            "schema": {"type": "string"},
            "example": "mail.acme.com. 3600 IN MX 10 mail.sendmux.ai.\n",
        }
    }


def _dns_records(operation: Schema) -> None:
    for parameter in operation.get("parameters", []):
        if parameter["name"] == "format":
            parameter["schema"] = {"type": "string", "enum": ["json", "bind"], "default": "json"}
            parameter["description"] = "json (the default) or bind: a zone-file fragment."
    _success(operation)["content"] = {
        "application/json": {"schema": {"$ref": "#/components/schemas/DnsRecordsResponse"}},
        "text/plain": {"schema": {"type": "string"}},
    }
    _success(operation)["description"] = "The records (as JSON, or as text with format=bind)."


def _create_mailbox(operation: Schema) -> None:
    created = _success(operation, "201")
    created["headers"] = {"Location": _LOCATION}
    created["links"] = {
        link: {"operationId": target, "parameters": {"public_id": "$response.body#/data/id"}}
        for link, target in (("GetMailbox", "getMailbox"), ("DeleteMailbox", "deleteMailbox"))
    }


def _patch_domain(operation: Schema) -> None:
    _success(operation)["headers"] = {"ETag": _ETAG}
    _success(operation)["description"] = (
        "Upgraded (or already send_receive): pending until its MX verifies."
    )
    for media in operation.get("requestBody", {}).get("content", {}).values():
        media["schema"] = {
            "type": "object",
            "description": "The one change a domain takes: a send-only domain's upgrade. Any "
            "other field, a downgrade or another mode is 422 validation_error.",
            "properties": {"mode": {"type": "string", "enum": ["send_receive"]}},
            "required": ["mode"],
            "additionalProperties": False,
        }
        media["example"] = {"mode": "send_receive"}
    operation.setdefault("parameters", []).append(
        {
            "name": "If-Match",
            "in": "header",
            "required": False,
            "description": "The ETag of the domain as the client read it: if it has changed "
            "since, 409 precondition_failed and nothing changes.",
            "schema": {"type": "string"},
        }
    )


def _list_domains(operation: Schema) -> None:
    _example(
        _success(operation),
        {
            "ok": True,
            "data": [DOMAIN_EXAMPLE],
            "pagination": {"has_more": True, "next_cursor": "ZDptZG9tXzhkMmtx"},
            "meta": _META,
        },
    )


def _claim_domain(operation: Schema) -> None:
    settled = _success(operation)
    settled["description"] = "Settled: the name is the claimant's (`domain_id`)."
    settled["headers"] = {"Location": _LOCATION}
    accepted = copy.deepcopy(settled)
    accepted["description"] = (
        "Accepted: the DNS is being checked, or the holder's domain released; poll `Location` "
        "or send the request again with the same Idempotency-Key."
    )
    operation["responses"]["202"] = accepted
    operation.setdefault("parameters", []).append(
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "Retry safely: the same key with the same body answers the same "
            "claim; with another body it is 409 idempotency_conflict.",
            "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,255}$"},
        }
    )


_OPERATION_REFINEMENTS = {
    "claimDomain": _claim_domain,
    "createDomain": _create_domain,
    "listDomains": _list_domains,
    "getDomain": _get_domain,
    "getDomainZoneFile": _zone_file,
    "getDomainDnsRecords": _dns_records,
    "createMailbox": _create_mailbox,
    "patchDomain": _patch_domain,
}
