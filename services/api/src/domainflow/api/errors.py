"""Every error the api answers, in the envelope.

Each has a code a program can branch on and a sentence a person can act on.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

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


def request_id_of(request: Request[Any, Any, Any]) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


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


EXCEPTION_HANDLERS: Any = {
    ApiError: on_api_error,
    ValidationException: on_validation_error,
    HTTPException: on_http_exception,
    Exception: on_unexpected,
}
