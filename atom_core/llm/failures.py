"""What a failed model call tells people: ATOM's own words, never the provider's.

A provider's error text can carry the tenant's key in any form (whole, masked
like `sk-abc****wxyz`, URL-encoded, base64, spaced out), and no scrubber can
know every encoding. So the message is built only from what ATOM can name
itself: the HTTP status, the error's class and a fixed summary per kind of
failure. Used by the gateway (a run's `error` and its span) and by the
provider test (`POST /providers/{p}/test`) alike.
"""

from __future__ import annotations

import asyncio

_CONNECTION_ERRORS = frozenset({"APIConnectionError", "ConnectError", "ConnectionError", "ConnectionRefusedError"})
_SUMMARIES: dict[int, str] = {
    400: "the provider refused the request as invalid",
    401: "the provider rejected the API key: check the key and the api_base",
    403: "the provider refused access: the key lacks permission for this model",
    404: "the model was not found at the provider",
    408: "the provider did not answer in time",
    413: "the request was too large for the provider",
    422: "the provider refused the request as invalid",
    429: "the provider is rate limiting this key: try again later",
}
_BY_CLASS: dict[str, int] = {
    "BadRequestError": 400,
    "AuthenticationError": 401,
    "PermissionDeniedError": 403,
    "NotFoundError": 404,
    "Timeout": 408,
    "RateLimitError": 429,
}


def status_of(error: BaseException | None) -> int | None:
    status = getattr(error, "status_code", None)
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def describe_failure(error: BaseException | None) -> str:
    """A short account of a failed model call: summary, error class and HTTP status, and
    nothing the provider wrote."""
    if error is None:
        return "the model did not answer"
    kind = type(error).__name__
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return "the model did not answer in time"
    status = status_of(error)
    summary = _SUMMARIES.get(status or _BY_CLASS.get(kind, 0))
    if summary is None and _is_connection_error(error):
        return f"could not connect to the provider: check api_base and that the server is running ({kind})"
    if summary is None:
        summary = "the provider had an internal error" if status and status >= 500 else "the model call failed"
    return f"{summary} ({kind}{f', HTTP {status}' if status else ''})"


def _is_connection_error(error: BaseException) -> bool:
    """litellm 1.106 reports a refused connection as InternalServerError("… Connection error.")."""
    seen: BaseException | None = error
    for _ in range(8):  # the cause chain: litellm's error, the SDK's, httpx's
        if seen is None:
            return False
        if type(seen).__name__ in _CONNECTION_ERRORS or "connection error" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False
