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
from domainflow.contracts import DomainStatus
from domainflow.kit.logging import get_logger

log = get_logger(__name__)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers


def error_response(
    request: Request[Any, Any, Any],
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    return Response(
        content={
            "ok": False,
            "error": {"code": code, "message": message, "details": details or {}},
            "meta": {"request_id": request_id_of(request)},
        },
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def on_api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    return error_response(request, exc.status, exc.code, exc.message, exc.details, exc.headers)


def on_validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    # Litestar says "Validation failed for POST /path"; the useful part is in `extra`.
    problems = exc.extra if isinstance(exc.extra, list) else []
    detail = str(exc.detail)
    if "JSON" in detail or "json" in detail:
        return error_response(
            request,
            400,
            "invalid_json",
            "The request body is not valid JSON. Send a JSON object, "
            'e.g. {"domain": "mail.acme.com"}, with Content-Type: application/json.',
        )
    readable = [p for p in problems if isinstance(p, dict)]
    if not readable or any(
        "Expected `object`" in str(p.get("message")) or p.get("message") == "'data'"
        for p in readable
    ):
        # The body as a whole is the wrong shape (empty, null, an array, a string).
        return error_response(
            request,
            400,
            "invalid_request",
            'The request body must be a JSON object, e.g. {"domain": "mail.acme.com"}.',
            {"problems": problems},
        )
    message = "; ".join(f"{p.get('key') or 'body'}: {p.get('message')}" for p in readable)
    return error_response(
        request,
        400,
        "invalid_request",
        message or detail,
        {"problems": problems},
    )


_STATUS_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


def on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    code = _STATUS_CODES.get(status, "bad_request" if status < 500 else "internal_error")
    message = str(exc.detail)
    if status == 413:
        message = "The request body is too large. Domain requests are a few hundred bytes."
    elif status == 400:
        # Litestar hands on the JSON decoder's complaint: keep it, and say what to send.
        return error_response(
            request,
            400,
            "invalid_json",
            f"The request body is not valid JSON ({message}). Send a JSON object such as "
            '{"domain": "mail.acme.com"} with Content-Type: application/json.',
        )
    if status >= 500:
        log.error("http.server_error", status=status, detail=message)
        message = "Something went wrong on our side; the request id lets us find out what."
    return error_response(request, status, code, message, headers=exc.headers)


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("http.unhandled", error=repr(exc))
    return error_response(
        request,
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal_error",
        "Something went wrong on our side; nothing was changed that is not shown. "
        "The request id lets us find out what.",
    )


def _problem(exc: refusals.Refused) -> ApiError:
    """The HTTP answer to a refusal."""
    match exc:
        case refusals.InvalidDomainInput():
            return ApiError(
                400, "domain_invalid", exc.message, {"reason": exc.reason, "field": exc.field}
            )
        case refusals.InvalidAddress():
            details = {"reason": exc.reason, "field": "address"}
            return ApiError(
                400,
                "address_invalid",
                exc.message,
                details | ({"suffix": exc.suffix} if exc.suffix else {}),
            )
        case refusals.InvalidRequest():
            return ApiError(400, exc.reason, exc.message)
        case refusals.DomainNotFound():
            return ApiError(404, "domain_not_found", exc.message)
        case refusals.DomainExists():
            return ApiError(
                409, "domain_exists", exc.message, {"id": exc.own_id} if exc.own_id else None
            )
        case refusals.DomainBusy():
            busy = (
                "domain_provisioning"
                if exc.status is DomainStatus.PROVISIONING
                else "domain_deleting"
            )
            return ApiError(409, busy, exc.message)
        case refusals.DomainInUse():
            return ApiError(
                409, "domain_in_use", exc.message, {"active_mailboxes": exc.active_mailboxes}
            )
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
            return ApiError(422, "idempotency_key_reused", exc.message, {"id": exc.domain_id})
        case refusals.ProvisioningFailed():
            return ApiError(
                502, "provisioning_failed", exc.message, {"id": exc.domain_id, "cause": exc.cause}
            )
    return _mailbox_problem(exc)


def _mailbox_problem(exc: refusals.Refused) -> ApiError:
    match exc:
        case refusals.MailboxNotFound():
            return ApiError(404, "mailbox_not_found", exc.message)
        case refusals.MailboxExists():
            return ApiError(
                409, "mailbox_exists", exc.message, {"id": exc.own_id} if exc.own_id else None
            )
        case refusals.MailboxDomainMissing():
            return ApiError(
                409,
                "domain_not_found",
                exc.message.replace("Add it and", "Add it with POST /api/v1/domains and"),
                {"domain": exc.domain},
            )
        case refusals.MailboxDomainNotReady():
            return _not_ready(exc)
    return ApiError(409, "conflict", exc.message)


def _not_ready(exc: refusals.MailboxDomainNotReady) -> ApiError:
    details: dict[str, Any] = {
        "domain_id": exc.domain_id,
        "domain": exc.domain,
        "state": exc.status.value,
    }
    if exc.status is DomainStatus.DELETING:
        return ApiError(409, "domain_deleting", exc.message, details)
    return ApiError(
        409,
        "domain_not_verified",
        exc.message.replace(
            "verify it", f"verify it (POST /api/v1/domains/{exc.domain_id}/verify)"
        ),
        {**details, "verification_status": public_status(exc.status)},
    )


def on_refused(request: Request[Any, Any, Any], exc: refusals.Refused) -> Response[Any]:
    return on_api_error(request, _problem(exc))


EXCEPTION_HANDLERS: Any = {
    ApiError: on_api_error,
    refusals.Refused: on_refused,
    ValidationException: on_validation_error,
    HTTPException: on_http_exception,
    Exception: on_unexpected,
}
