"""Pure-ASGI middleware: request ids, security headers, body size and nesting, metrics.

Pure ASGI (not BaseHTTPMiddleware) so streaming responses pass straight
through. The dashboard is mounted inside this app, so the strict API CSP is
applied only to API paths; every response gets the other headers.
"""

from __future__ import annotations

import re
import time

from prometheus_client import Counter, Histogram
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atom_core.context import new_request_id
from atom_core.validation import body_depth_problem

API_PREFIXES = ("/api/", "/health", "/metrics")
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# Swagger UI needs its own (bundled, same-origin) script and an inline initialiser.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'"
)
MAX_BODY_BYTES = 1_048_576
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

REQUESTS = Counter("atom_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("atom_http_request_duration_seconds", "HTTP request latency", ["method", "route"])


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, hsts_max_age_s: int = 0):
        self.app = app
        self.hsts = f"max-age={hsts_max_age_s}; includeSubDomains" if hsts_max_age_s else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        supplied = headers.get("x-request-id", "")
        request_id = supplied if _REQUEST_ID_RE.match(supplied) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        path: str = scope["path"]
        is_api = path.startswith(API_PREFIXES)
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                out = MutableHeaders(scope=message)
                out["X-Request-ID"] = request_id
                out["X-Content-Type-Options"] = "nosniff"
                out["X-Frame-Options"] = "DENY"
                out["Referrer-Policy"] = "strict-origin-when-cross-origin"
                out["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
                if is_api:
                    out["Content-Security-Policy"] = DOCS_CSP if path.startswith("/api/v1/docs") else API_CSP
                    out.setdefault("Cache-Control", "no-store")
                if self.hsts:
                    out["Strict-Transport-Security"] = self.hsts
            await send(message)

        if is_api and scope["method"] not in _BODILESS:
            body = None if _too_large(headers) else await _read_body(receive)
            if body is None:
                response = _error(413, "payload_too_large", f"request body is over {MAX_BODY_BYTES} bytes")
            elif problem := body_depth_problem(body):
                response = _error(422, "too_deep", problem, field="body")
            else:
                receive = _replay(body, receive)
                response = None
            if response is not None:
                await response(scope, receive, send_with_headers)
                return
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            if is_api:
                route = scope.get("route")
                template = getattr(route, "path", "unmatched")
                REQUESTS.labels(scope["method"], template, str(status_holder["status"])).inc()
                LATENCY.labels(scope["method"], template).observe(time.perf_counter() - started)


_BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body = {"code": code, "message": message} | ({"field": field} if field else {})
    return JSONResponse({"error": body}, status_code=status)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body (None if it is over the limit), read before the app decodes
    it so that its size and nesting are checked first. A chunked body has no
    Content-Length: the bytes are counted as they arrive."""
    chunks: list[bytes] = []
    seen = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client left; the app will see an empty body and answer no one
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, then the client's own messages (a disconnect ends a stream)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def _too_large(headers: Headers) -> bool:
    length = headers.get("content-length")
    return length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES
