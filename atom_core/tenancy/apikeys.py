"""API keys: `atom_<id>_<secret>`, shown once, stored as a SHA-256 hash.

The visible prefix (`atom_<id>`) finds the key; the hash proves it. Keys are
256-bit random, so a fast hash is the right tool (a slow password hash would
add its cost to every request and protect nothing more). Every request looks
the key up again, so a revocation takes effect at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from atom_core.context import Ctx
from atom_core.db import rls_scope, session_scope
from atom_core.db.pagination import Page, paginate
from atom_core.errors import Forbidden, NotFound, Unauthorized
from atom_core.governance import audit
from atom_core.tenancy import permissions
from atom_core.tenancy.models import ApiKey
from atom_core.tenancy.validation import check_name

KEY_PREFIX = "atom_"
USER, OPERATOR = "user", "operator"
OPERATOR_ACTOR = "system"  # the actor of `tenancy.service.operator_ctx` (CLI, seeding)
LAST_USED_RESOLUTION = timedelta(minutes=1)  # write last_used_at at most this often


@dataclass(frozen=True)
class ApiKeyInfo:
    id: uuid.UUID
    name: str
    prefix: str
    role: str
    created_by: uuid.UUID | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    owner_kind: str = USER  # or OPERATOR: made by the CLI, created_by is None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyInfo:
        return cls(
            key.id,
            key.name,
            key.prefix,
            key.role,
            key.created_by,
            key.created_at,
            key.last_used_at,
            key.revoked_at,
            key.owner_kind,
        )


@dataclass(frozen=True)
class Owner:
    """Who a new key belongs to, and whose keys a caller calls its own."""

    kind: str  # "user" or "operator"
    user_id: uuid.UUID | None = None

    def owns(self, key: ApiKey) -> bool:
        # Only a user owns keys as a person; the operator's keys are managed by role.
        return self.kind == USER and key.owner_kind == USER and key.created_by == self.user_id


@dataclass(frozen=True)
class NewApiKey:
    info: ApiKeyInfo
    key: str  # the only time the whole key exists outside the caller's hands


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _new_key() -> tuple[str, str]:
    prefix = f"{KEY_PREFIX}{secrets.token_hex(6)}"
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


def _prefix_of(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or len(parts[1]) != 12 or not parts[2]:
        return None
    return f"{parts[0]}_{parts[1]}"


async def create(ctx: Ctx, name: str, role: str | None = None) -> NewApiKey:
    permissions.require(ctx, "apikeys.create")
    name = check_name(name)
    role = role or "member"
    permissions.require_grantable(ctx, role)
    for _ in range(3):  # a 48-bit prefix clash is rare; retry rather than fail
        prefix, key = _new_key()
        try:
            async with session_scope(ctx) as session:
                owner = await caller(session, ctx)
                row = ApiKey(
                    tenant_id=ctx.tenant_id,
                    name=name,
                    prefix=prefix,
                    key_hash=_hash(key),
                    role=role,
                    owner_kind=owner.kind,
                    created_by=owner.user_id,
                )
                session.add(row)
                details = {"name": name, "role": role, "owner": _owner_label(owner)}
                audit.record(session, ctx, "apikey.created", f"apikey:{row.id}", details)
        except IntegrityError:
            continue
        return NewApiKey(info=ApiKeyInfo.of(row), key=key)
    raise RuntimeError("could not allocate a unique API key prefix")


async def caller(session: AsyncSession, ctx: Ctx) -> Owner:
    """The owner a caller acts for: its user; for a key, the owner of that key
    (so a key made with a key belongs to the same person); the operator for the CLI."""
    if ctx.user_id is not None:
        return Owner(USER, ctx.user_id)
    key_id = key_id_of(ctx)
    if key_id is not None:
        query = select(ApiKey).where(ApiKey.tenant_id == ctx.tenant_id, ApiKey.id == key_id)
        key = (await session.exec(query)).first()
        if key is None or key.revoked_at is not None:
            raise Unauthorized("API key has been revoked", code="api_key_revoked")
        return Owner(key.owner_kind, key.created_by)
    if ctx.actor == OPERATOR_ACTOR:
        return Owner(OPERATOR)
    raise Forbidden("only a user, an API key or the operator can own API keys")


def key_id_of(ctx: Ctx) -> uuid.UUID | None:
    """The API key a context was authenticated with, if any."""
    kind, _, value = ctx.actor.partition(":")
    return uuid.UUID(value) if kind == "apikey" else None


def _owner_label(owner: Owner) -> str:
    return f"user:{owner.user_id}" if owner.kind == USER else OPERATOR


async def list_keys(ctx: Ctx, *, limit: int = 50, cursor: str | None = None) -> Page[ApiKeyInfo]:
    """Admins and owners see every key of the tenant, the operator's included;
    others see only the keys they own (none, if they act for no user)."""
    permissions.require(ctx, "apikeys.read")
    query = select(ApiKey).where(ApiKey.tenant_id == ctx.tenant_id)
    async with session_scope(ctx, readonly=True) as session:
        if not permissions.can(ctx.role, "apikeys.revoke_any"):
            owner = await caller(session, ctx)
            if owner.kind != USER:
                return Page([], None)
            query = query.where(ApiKey.owner_kind == USER, ApiKey.created_by == owner.user_id)
        page = await paginate(session, query, ApiKey.created_at, ApiKey.id, limit=limit, cursor=cursor)
    return Page([ApiKeyInfo.of(k) for k in page.items], page.next_cursor)


async def revoke(ctx: Ctx, key_id: uuid.UUID) -> ApiKeyInfo:
    permissions.require(ctx, "apikeys.revoke_own")
    async with session_scope(ctx) as session:
        key = (await session.exec(select(ApiKey).where(ApiKey.tenant_id == ctx.tenant_id, ApiKey.id == key_id))).first()
        if key is None:
            raise NotFound("API key not found")
        if not (await caller(session, ctx)).owns(key):
            permissions.require(ctx, "apikeys.revoke_any")
        if key.revoked_at is None:
            key.revoked_at = datetime.now(UTC)
            session.add(key)
            audit.record(session, ctx, "apikey.revoked", f"apikey:{key.id}", {"name": key.name})
    return ApiKeyInfo.of(key)


async def revoke_owned_by(session: AsyncSession, ctx: Ctx, user_id: uuid.UUID, *, above: str | None = None) -> None:
    """Inside the caller's transaction: the keys a user owns in this tenant (those
    made through their keys included) stop working when they leave it, or, with
    `above`, those with more power than the role they are left with."""
    query = update(ApiKey).where(
        ApiKey.tenant_id == ctx.tenant_id,
        ApiKey.owner_kind == USER,
        ApiKey.created_by == user_id,
        ApiKey.revoked_at.is_(None),
    )
    if above is not None:
        query = query.where(ApiKey.role.in_(permissions.roles_above(above)))
    await session.exec(query.values(revoked_at=datetime.now(UTC)))


async def authenticate(key: str, tenant_id: uuid.UUID | None, *, request_id: str) -> Ctx:
    prefix = _prefix_of(key)
    if prefix is None:
        raise Unauthorized("API key is not valid", code="invalid_api_key")
    async with rls_scope(key_prefix=prefix, readonly=True) as session:
        row = (await session.exec(select(ApiKey).where(ApiKey.prefix == prefix))).first()
    if row is None or not hmac.compare_digest(row.key_hash, _hash(key)):
        raise Unauthorized("API key is not valid", code="invalid_api_key")
    if row.revoked_at is not None:
        raise Unauthorized("API key has been revoked", code="api_key_revoked")
    if tenant_id is not None and tenant_id != row.tenant_id:
        raise Forbidden("this API key belongs to another tenant", field="X-Tenant-ID")
    ctx = Ctx(tenant_id=row.tenant_id, user_id=None, role=row.role, actor=f"apikey:{row.id}", request_id=request_id)
    await _touch(ctx, row)
    return ctx


async def _touch(ctx: Ctx, row: ApiKey) -> None:
    now = datetime.now(UTC)
    if row.last_used_at and now - row.last_used_at < LAST_USED_RESOLUTION:
        return
    async with session_scope(ctx) as session:
        await session.exec(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
