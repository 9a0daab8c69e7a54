"""Domain errors. Every interface maps them to one error shape.

REST turns them into `{"error": {"code", "message", "field"?}}` with `status`;
the CLI prints `message` and exits 2; the UI shows `message`.
Messages are written for users: no ids of other tenants, no secrets.
"""

from __future__ import annotations


class AtomError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code

    def to_dict(self) -> dict:
        body: dict = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body


class Invalid(AtomError):
    status = 422
    code = "invalid"


class Unauthorized(AtomError):
    status = 401
    code = "unauthorized"


class Forbidden(AtomError):
    status = 403
    code = "forbidden"


class NotFound(AtomError):
    status = 404
    code = "not_found"


class Conflict(AtomError):
    status = 409
    code = "conflict"


class PolicyViolation(Forbidden):
    code = "policy_violation"


class BudgetExceeded(AtomError):
    status = 402
    code = "budget_exceeded"


class RateLimited(AtomError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ServiceUnavailable(AtomError):
    """A service ATOM depends on (Redis) cannot be reached: retry shortly."""

    status = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 5):
        super().__init__(message)
        self.retry_after_s = retry_after_s
