"""The request context every service receives first."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Ctx:
    """Who is acting, for which tenant, in which request.

    `actor` names the principal in audit entries: `user:<id>` or `apikey:<id>`.
    """

    tenant_id: uuid.UUID
    user_id: uuid.UUID | None
    role: str
    actor: str
    request_id: str = field(default_factory=new_request_id)

    @property
    def roles(self) -> frozenset[str]:
        return frozenset({self.role})
