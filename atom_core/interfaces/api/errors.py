"""Every failure becomes `{"error": {"code", "message", "field"?}}` with a 4xx,
or a 503 with `Retry-After` when a service ATOM needs (Redis) is down.

An unexpected exception is logged with its request id and answered with a
generic 500: never a stack trace, never an internal message.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from atom_core.errors import AtomError, RateLimited, ServiceUnavailable
from atom_core.infra.redis import OUTAGE_ERRORS, outage

log = logging.getLogger("atom.api")

_LOCATIONS = {"body", "query", "path", "header", "cookie"}


def error_response(status: int, code: str, message: str, field: str | None = None, **extra: object) -> JSONResponse:
    body: dict[str, object] = {"code": code, "message": printable(message)}
    if field:
        body["field"] = printable(field)
    body.update(extra)
    return JSONResponse({"error": body}, status_code=status)


def printable(text: str) -> str:
    """`text` as UTF-8-encodable text: a field name can be a key the client sent,
    lone surrogate included, and an error must never fail to be sent."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def field_name(loc: tuple | list) -> str | None:
    parts: list[str] = []
    for part in loc:
        if part == "[key]":  # the error is in a mapping's key: name the mapping, the key may be unprintable
            parts.pop()
        elif not (isinstance(part, str) and part in _LOCATIONS):
            parts.append(str(part))
    return ".".join(parts) or None


def describe(error: dict) -> tuple[str, str | None, str]:
    """(code, field, message) of one pydantic error, in words for users."""
    loc = tuple(error.get("loc", ()))
    field = field_name(loc)
    kind = error.get("type", "")
    if kind == "json_invalid":
        return "invalid_json", "body", "request body is not valid JSON"
    if kind == "string_unicode":  # a lone surrogate (\ud800): valid JSON, but not text
        field = field or "body"
        return "invalid", field, f"{field}: text must be valid Unicode (no lone surrogates)"
    if field is None and loc[:1] == ("body",):
        if kind == "missing":
            return "missing_body", "body", "request body is required (a JSON object)"
        return "invalid_body", "body", "request body must be a JSON object"
    if kind == "missing":
        return "missing_field", field, f"{field} is required"
    if kind == "extra_forbidden":
        return "unknown_field", field, f"{field} is not an accepted field"
    message = error.get("msg", "is not valid")
    return "invalid", field, f"{field}: {message}" if field else message


async def _atom_error(request: Request, exc: AtomError) -> JSONResponse:
    response = error_response(exc.status, exc.code, exc.message, exc.field)
    if isinstance(exc, RateLimited | ServiceUnavailable):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


async def _redis_outage(request: Request, exc: Exception) -> JSONResponse:
    """A Redis outage on a path that did not name its service: still a 503 that says so."""
    log.warning("Redis unavailable in %s %s (%s)", request.method, request.url.path, type(exc).__name__)
    return await _atom_error(request, outage("coordination"))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    described = [describe(e) for e in exc.errors()]
    code, field, message = described[0]
    status = 400 if code == "invalid_json" else 422
    details = [{"code": c, "field": f and printable(f), "message": printable(m)} for c, f, m in described]
    return error_response(status, code, message, field, details=details)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    codes = {
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
    }
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    response = error_response(exc.status_code, codes.get(exc.status_code, "http_error"), message)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", "")
    log.exception("unhandled error in %s %s (request %s)", request.method, request.url.path, request_id)
    return error_response(500, "internal_error", f"something went wrong on our side (request {request_id})")


def install(app: FastAPI) -> None:
    app.add_exception_handler(AtomError, _atom_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for error in OUTAGE_ERRORS:
        app.add_exception_handler(error, _redis_outage)
    app.add_exception_handler(Exception, _unexpected)
