"""Every error the api answers, in the envelope: the one place refusals become HTTP.

Each has a code a program can branch on and a sentence a person can act on. Use cases raise
the domain's errors (`domain/errors.py`); `PROBLEMS` maps each to its status, code, details
and headers. `ApiError` is for what only the edge can see (a missing key, a bad body).
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from domainflow.api.domain import errors as refusals
from domainflow.api.domain.state import public_status
from domainflow.api.http.envelope import request_id_of
from domainflow.api.http.request_id import new_request_id
from domainflow.contracts import DomainStatus
from domainflow.kit.logging import get_logger

log = get_logger(__name__)


#: The public codes (Sendmux's Management API): what a client branches on. Our precise reason
#: (`domain_has_scheme`, `domain_in_use`, ...) travels beside it as `reason`.
_PUBLIC_CODES = {
    401: "authentication_required",
    403: "insufficient_permissions",
    404: "not_found",
    405: "not_found",  # no such operation on this path (`Allow` says which there are)
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limit_exceeded",
    503: "service_unavailable",
}
_PUBLIC_BY_REASON = {"idempotency_key_reused": "idempotency_conflict"}


def public_code(status: int, reason: str) -> str:
    if reason in _PUBLIC_BY_REASON:
        return _PUBLIC_BY_REASON[reason]
    if status in (400, 415):
        missing = reason.endswith(("_missing", "_required"))
        return "missing_parameter" if missing else "invalid_parameter"
    return _PUBLIC_CODES.get(status, "internal_error" if status >= 500 else "invalid_parameter")


class ApiError(Exception):
    """An answer only the edge can give (no key, a bad body), or a refusal mapped to HTTP.

    `reason` is the precise machine code; `param` the offending field, when there is one.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        *,
        param: str | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.details = details or {}
        self.headers = headers
        self.param = param
        self.errors = errors

    @property
    def code(self) -> str:
        return public_code(self.status, self.reason)


def error_body(
    exc: ApiError, request_id: str, client_request_id: str | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": exc.code,
        "message": exc.message,
        "retryable": exc.status == 429 or exc.status >= 500,
        "reason": exc.reason,
    }
    if exc.param is not None:
        error["param"] = exc.param
    errors = exc.errors
    if errors is None and exc.status in (400, 422) and exc.param is not None:
        errors = [{"code": exc.reason, "field": exc.param, "message": exc.message}]
    if errors:
        error["errors"] = errors
    if exc.details:
        error["details"] = exc.details
    meta = {"request_id": request_id}
    if client_request_id:
        meta["client_request_id"] = client_request_id
    return {"ok": False, "error": error, "meta": meta}


def error_response(request: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    headers = dict(exc.headers or {})
    request_id = request_id_of(request)
    if not request_id:
        # Refused while routing (405, no such path): the request-id middleware never ran.
        request_id = new_request_id()
        headers["X-Request-Id"] = request_id
    if exc.status == 503 and "Retry-After" not in headers:
        headers["Retry-After"] = "5"  # every 503 here passes: say when to come back
    return Response(
        content=error_body(
            exc, request_id, request.scope.get("state", {}).get("client_request_id")
        ),
        status_code=exc.status,
        media_type=MediaType.JSON,
        headers=headers or None,
    )


def on_api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    return error_response(request, exc)


def on_validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    # Litestar says "Validation failed for POST /path"; the useful part is in `extra`.
    problems = exc.extra if isinstance(exc.extra, list) else []
    detail = str(exc.detail)
    if "JSON" in detail or "json" in detail:
        return error_response(request, _invalid_json(None))
    readable = [p for p in problems if isinstance(p, dict)]
    if not readable or any(
        "Expected `object`" in str(p.get("message")) or p.get("message") == "'data'"
        for p in readable
    ):
        # The body as a whole is the wrong shape (empty, null, an array, a string).
        return error_response(
            request,
            ApiError(
                400,
                "invalid_request",
                'The request body must be a JSON object, e.g. {"domain": "mail.acme.com"}.',
            ),
        )
    errors = [
        {
            "code": "invalid_value",
            "field": str(p.get("key") or "body"),
            "message": str(p.get("message")),
        }
        for p in readable
    ]
    message = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return error_response(
        request,
        ApiError(
            400, "invalid_request", message or detail, param=errors[0]["field"], errors=errors
        ),
    )


def _invalid_json(complaint: str | None) -> ApiError:
    said = f" ({complaint})" if complaint else ""
    return ApiError(
        400,
        "invalid_json",
        f"The request body is not valid JSON{said}. Send a JSON object such as "
        '{"domain": "mail.acme.com"} with Content-Type: application/json.',
    )


_REASONS = {
    401: "unauthorized",
    403: "forbidden",
    404: "route_not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


def on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    reason = _REASONS.get(status, "bad_request" if status < 500 else "internal_error")
    message = str(exc.detail)
    if status == 413:
        message = "The request body is too large. Domain requests are a few hundred bytes."
    elif status == 404:
        message = "There is no such endpoint; the API lives under /api/v1 (see /schema)."
    elif status == 400:
        # Litestar hands on the JSON decoder's complaint: keep it, and say what to send.
        return error_response(request, _invalid_json(message))
    if status >= 500:
        log.error("http.server_error", status=status, detail=message)
        message = "Something went wrong on our side; the request id lets us find out what."
    return error_response(request, ApiError(status, reason, message, headers=exc.headers))


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("http.unhandled", error=repr(exc))
    return error_response(
        request,
        ApiError(
            HTTP_500_INTERNAL_SERVER_ERROR,
            "internal_error",
            "Something went wrong on our side; nothing was changed that is not shown. "
            "The request id lets us find out what.",
        ),
    )


def problem_of(exc: refusals.Refused) -> ApiError:
    """The HTTP answer to a refusal of the domain use cases."""
    match exc:
        case refusals.InvalidRequest():
            return ApiError(400, exc.reason, exc.message, _suffix(exc), param=exc.field)
        case refusals.DomainNotFound():
            return ApiError(404, "domain_not_found", exc.message)
        case refusals.UnsupportedChange():
            return ApiError(422, "change_unsupported", exc.message, param=exc.field)
        case refusals.StaleVersion():
            return ApiError(409, "precondition_failed", exc.message, param="If-Match")
        case refusals.DomainExists():
            return ApiError(409, "domain_exists", exc.message, _held(exc))
        case refusals.NothingToClaim():
            return ApiError(409, "domain_not_held", exc.message, {"domain": exc.name})
        case refusals.ClaimRefused():
            return _claim_refused(exc)
        case refusals.DomainBusy():
            provisioning = exc.status is DomainStatus.PROVISIONING
            busy = "domain_provisioning" if provisioning else "domain_deleting"
            return ApiError(409, busy, exc.message)
        case refusals.DomainInUse():
            details = {"active_mailboxes": exc.active_mailboxes}
            return ApiError(409, "domain_in_use", exc.message, details)
        case refusals.RateLimited():
            seconds = exc.retry_after
            return ApiError(
                429,
                "rate_limited",
                exc.message,
                {"retry_after": seconds},
                headers={"Retry-After": str(seconds)},
            )
        case refusals.IdempotencyKeyReused():
            return ApiError(
                409,
                "idempotency_key_reused",
                exc.message,
                {"id": exc.domain_id},
                param="Idempotency-Key",
            )
        case refusals.DeletedSinceKeyed():
            return ApiError(409, "domain_deleted", exc.message, {"id": exc.domain_id})
        case refusals.NoSesCapacity():
            return _no_ses_capacity(exc.message, exc.region)
        case refusals.ProvisioningFailed():
            failed = {"id": exc.domain_id, "cause": exc.cause}
            return ApiError(503, "provisioning_failed", exc.message, failed)
    return _mailbox_problem(exc)


def _no_ses_capacity(message: str, region: str, **more: Any) -> ApiError:
    details = {"reason": "ses_capacity_exhausted", "region": region, "retry_after": 300, **more}
    return ApiError(503, "service_unavailable", message, details, headers={"Retry-After": "300"})


def _claim_refused(exc: refusals.ClaimRefused) -> ApiError:
    reason = f"claim_{exc.verdict}"
    if exc.verdict == "inconclusive":
        return ApiError(
            503, reason, exc.message, {"retry_after": 30}, headers={"Retry-After": "30"}
        )
    if exc.verdict == "no_ses_capacity":  # as a create in that region is refused
        return _no_ses_capacity(exc.message, exc.region or "", verdict=exc.verdict)
    details: dict[str, Any] = {"verdict": exc.verdict}
    if exc.expected_record is not None:
        details["expected_record"] = exc.expected_record
    if exc.active_mailboxes:
        details["active_mailboxes"] = exc.active_mailboxes
    return ApiError(409, reason, exc.message, details)


def _held(exc: refusals.DomainExists) -> dict[str, Any] | None:
    if exc.own_id or exc.claim is None:
        return _own(exc.own_id)
    record = {"type": "TXT", "name": exc.claim.txt_name, "value": exc.claim.txt_value}
    return {"claim": {"record": record, "method": "POST", "endpoint": exc.claim.endpoint}}


def _own(own_id: str | None) -> dict[str, Any] | None:
    return {"id": own_id} if own_id else None


def _suffix(exc: refusals.InvalidRequest) -> dict[str, Any] | None:
    if isinstance(exc, refusals.InvalidAddress) and exc.suffix:
        return {"suffix": exc.suffix}
    return None


def _mailbox_problem(exc: refusals.Refused) -> ApiError:
    match exc:
        case refusals.MailboxNotFound():
            return ApiError(404, "mailbox_not_found", exc.message)
        case refusals.MailboxExists():
            return ApiError(409, "mailbox_exists", exc.message, _own(exc.own_id))
        case refusals.MailboxDomainMissing():
            message = exc.message.replace("Add it and", "Add it with POST /api/v1/domains and")
            return ApiError(409, "domain_not_found", message, {"domain": exc.domain})
        case refusals.MailboxDomainNotReady():
            return _not_ready(exc)
        case refusals.MailboxDomainSendOnly():
            upgrade = f"Upgrade it to send_receive first (PATCH /api/v1/domains/{exc.domain_id})."
            return ApiError(
                409,
                "domain_send_only",
                exc.message.replace("Upgrade it to send_receive first.", upgrade),
                {"domain_id": exc.domain_id, "domain": exc.domain},
            )
    return ApiError(409, "conflict", exc.message)


def _not_ready(exc: refusals.MailboxDomainNotReady) -> ApiError:
    details: dict[str, Any] = {
        "domain_id": exc.domain_id,
        "domain": exc.domain,
        "state": exc.status.value,
    }
    if exc.status is DomainStatus.DELETING:
        return ApiError(409, "domain_deleting", exc.message, details)
    verify = f"verify it (POST /api/v1/domains/{exc.domain_id}/verify)"
    return ApiError(
        409,
        "domain_not_verified",
        exc.message.replace("verify it", verify),
        {**details, "verification_status": public_status(exc.status)},
    )


def on_refused(request: Request[Any, Any, Any], exc: refusals.Refused) -> Response[Any]:
    return error_response(request, problem_of(exc))


EXCEPTION_HANDLERS: Any = {
    ApiError: on_api_error,
    refusals.Refused: on_refused,
    ValidationException: on_validation_error,
    HTTPException: on_http_exception,
    Exception: on_unexpected,
}
