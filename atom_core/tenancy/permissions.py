"""Roles and the permission matrix, enforced in services (not only in routes)."""

from __future__ import annotations

from atom_core.context import Ctx
from atom_core.errors import Forbidden, Invalid

ROLE_RANK = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}
ROLES = tuple(ROLE_RANK)

# action -> the least role allowed to do it
PERMISSIONS: dict[str, str] = {
    "tenant.read": "viewer",
    "members.read": "viewer",
    "members.manage": "admin",
    "apikeys.read": "member",
    "apikeys.create": "member",
    "apikeys.revoke_own": "member",
    "apikeys.revoke_any": "admin",
    "audit.read": "admin",
    "agents.read": "viewer",
    "agents.write": "member",
    "agents.run": "member",
    "providers.read": "member",
    "providers.manage": "admin",
    "tools.read": "member",
    "tools.manage": "admin",
    "workflows.read": "viewer",
    "workflows.write": "member",
    "workflows.run": "member",
    "workflows.approve": "member",
}

ACTION_WORDS = {
    "members.manage": "manage members",
    "apikeys.read": "list API keys",
    "apikeys.create": "create API keys",
    "apikeys.revoke_own": "revoke API keys",
    "apikeys.revoke_any": "revoke other people's API keys",
    "audit.read": "read the audit log",
    "agents.write": "create, change or delete agents",
    "agents.run": "run agents",
    "providers.read": "see model providers",
    "providers.manage": "manage model providers and prices",
    "tools.manage": "change tool settings",
    "workflows.write": "create or change workflows",
    "workflows.run": "run, cancel or rerun workflows",
    "workflows.approve": "approve or reject workflow steps",
}


def can(role: str, action: str) -> bool:
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[PERMISSIONS[action]]


def require(ctx: Ctx, action: str) -> None:
    if not can(ctx.role, action):
        words = ACTION_WORDS.get(action, action)
        raise Forbidden(f"your role '{ctx.role}' cannot {words}")


def check_role(role: str, field: str = "role") -> str:
    if role not in ROLE_RANK:
        raise Invalid(f"{field} must be one of: {', '.join(ROLES)}", field=field)
    return role


def roles_above(role: str) -> tuple[str, ...]:
    return tuple(r for r, rank in ROLE_RANK.items() if rank > ROLE_RANK[role])


def require_grantable(ctx: Ctx, role: str, field: str = "role") -> None:
    """Nobody hands out more power than they hold; only owners make owners."""
    check_role(role, field)
    if ROLE_RANK[role] > ROLE_RANK[ctx.role] or (role == "owner" and ctx.role != "owner"):
        raise Forbidden(f"your role '{ctx.role}' cannot grant the role '{role}'", field=field)
