"""Identity services: signup, login, authentication, the current user, members.

Every function validates its own input (the REST layer, the CLI and the UI
all call these), owns its transaction, and raises `atom_core.errors` only.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from atom_core.context import Ctx, new_request_id
from atom_core.db import rls_scope, session_scope
from atom_core.errors import Conflict, Forbidden, NotFound, ServiceUnavailable, Unauthorized
from atom_core.governance import audit
from atom_core.infra import events
from atom_core.infra.ratelimit import get_rate_limiter
from atom_core.settings import get_settings
from atom_core.tenancy import apikeys, passwords, permissions, tokens
from atom_core.tenancy.models import Membership, Tenant, User
from atom_core.tenancy.validation import check_name, check_password, normalize_email, slugify

log = logging.getLogger(__name__)
MEMBERSHIP_TOPIC = "members"  # bus topic: a membership changed (open streams re-check their access)


@dataclass(frozen=True)
class SignupResult:
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class LoginResult:
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class TenantInfo:
    tenant_id: uuid.UUID
    name: str
    slug: str
    role: str


@dataclass(frozen=True)
class Me:
    user_id: uuid.UUID | None
    email: str | None
    tenant_id: uuid.UUID
    role: str
    tenants: list[TenantInfo]
    api_key_id: uuid.UUID | None = None


@dataclass(frozen=True)
class MemberInfo:
    user_id: uuid.UUID
    email: str
    role: str
    created_at: datetime


# --- signup, login, tenants -------------------------------------------------


async def signup(
    email: str, password: str, tenant_name: str, *, client_ip: str, request_id: str | None = None
) -> SignupResult:
    """Create a tenant and its owner account. `client_ip` feeds the per-IP auth limit."""
    await _limit_auth_attempts(client_ip)
    email = normalize_email(email)
    tenant_name = check_name(tenant_name, "tenant_name")
    check_password(password, email)
    password_hash = await passwords.hash_password(password)
    tenant_id = uuid.uuid4()
    user = await _create_tenant_with_owner(tenant_id, tenant_name, email, password_hash, request_id=request_id)
    token, expires_at = tokens.issue(user.id, tenant_id)
    return SignupResult(tenant_id=tenant_id, user_id=user.id, token=token, expires_at=expires_at)


async def create_tenant(
    name: str, owner_email: str, *, owner_password: str | None = None, request_id: str | None = None
) -> tuple[Tenant, User]:
    """Administrative tenant creation (CLI, seeding).

    An existing user becomes the owner as they are; a new one needs a password.
    """
    name = check_name(name, "name")
    email = normalize_email(owner_email, "owner_email")
    password_hash = None
    if owner_password is not None:
        check_password(owner_password, email, field="owner_password")
        password_hash = await passwords.hash_password(owner_password)
    tenant_id = uuid.uuid4()
    user = await _create_tenant_with_owner(tenant_id, name, email, password_hash, request_id=request_id)
    async with rls_scope(tenant_id=tenant_id, readonly=True) as session:
        tenant = await session.get(Tenant, tenant_id)
    assert tenant is not None
    return tenant, user


async def _create_tenant_with_owner(
    tenant_id: uuid.UUID, name: str, email: str, password_hash: str | None, *, request_id: str | None
) -> User:
    """With a password: a new account (409 if the email is taken). Without one:
    an existing account becomes the owner (404 if there is none)."""
    new_user_id = uuid.uuid4()
    try:
        async with rls_scope(tenant_id=tenant_id, user_id=new_user_id, email=email) as session:
            user = (await session.exec(select(User).where(User.email == email))).first()
            if password_hash and user is not None:
                raise Conflict("an account with this email already exists; sign in instead", field="email")
            if not password_hash and user is None:
                raise NotFound(f"no account for {email}; give a password to create one", field="owner_email")
            if user is None:
                user = User(id=new_user_id, email=email, password_hash=password_hash)
                session.add(user)
            tenant = await _insert_tenant(session, tenant_id, name)
            session.add(Membership(tenant_id=tenant_id, user_id=user.id, role="owner"))
            ctx = Ctx(tenant_id, user.id, "owner", f"user:{user.id}", request_id or new_request_id())
            audit.record(session, ctx, "tenant.created", f"tenant:{tenant.id}", {"name": name, "slug": tenant.slug})
    except IntegrityError:
        # Two signups raced for the same email; the loser wrote nothing.
        raise Conflict("an account with this email already exists; sign in instead", field="email") from None
    return user


async def _insert_tenant(session: AsyncSession, tenant_id: uuid.UUID, name: str) -> Tenant:
    """Insert with a readable slug; other tenants' slugs are invisible (RLS), so
    a clash shows up only as a unique violation and we retry with a suffix."""
    base = slugify(name)
    for attempt in range(6):
        slug = base if attempt == 0 else f"{base}-{secrets.token_hex(3)}"
        try:
            async with session.begin_nested():
                tenant = Tenant(id=tenant_id, name=name, slug=slug)
                session.add(tenant)
                await session.flush()
            return tenant
        except IntegrityError:
            continue
    raise Conflict("could not find a free tenant slug; choose another name", field="tenant_name")


async def login(email: str, password: str, *, client_ip: str) -> LoginResult:
    """A login token for the user's first tenant. `client_ip` feeds the per-IP auth limit."""
    await _limit_auth_attempts(client_ip)
    email = normalize_email(email)
    async with rls_scope(email=email, readonly=True) as session:
        user = (await session.exec(select(User).where(User.email == email))).first()
    if not await passwords.verify_password(user.password_hash if user else None, password or ""):
        raise Unauthorized("email or password is incorrect", code="invalid_credentials")
    assert user is not None
    tenants = await _tenants_of(user.id)
    if not tenants:
        raise Forbidden("this account is not a member of any tenant")
    token, expires_at = tokens.issue(user.id, tenants[0].tenant_id)
    return LoginResult(token=token, expires_at=expires_at)


async def _limit_auth_attempts(client_ip: str) -> None:
    """Every interface that takes passwords shares this limit (REST, dashboard)."""
    await get_rate_limiter().enforce(get_settings().auth_rate_limit, "auth", client_ip or "unknown")


async def _tenants_of(user_id: uuid.UUID) -> list[TenantInfo]:
    query = (
        select(Tenant, Membership.role)
        .join(Membership, Membership.tenant_id == Tenant.id)
        .where(Membership.user_id == user_id)
        .order_by(Membership.created_at, Tenant.id)
    )
    async with rls_scope(user_id=user_id, readonly=True) as session:
        rows = (await session.exec(query)).all()
    return [TenantInfo(tenant_id=t.id, name=t.name, slug=t.slug, role=role) for t, role in rows]


async def sign_out_everywhere(ctx: Ctx) -> None:
    """Invalidate every login token of the calling user issued until now."""
    if ctx.user_id is None:
        raise Forbidden("API keys cannot sign out; revoke the key instead")
    async with session_scope(ctx) as session:
        user = await session.get(User, ctx.user_id)
        assert user is not None
        user.tokens_valid_after = datetime.now(UTC)
        session.add(user)
        audit.record(session, ctx, "user.signed_out_everywhere", f"user:{ctx.user_id}")


# --- authentication ------------------------------------------------------------


async def authenticate(token: str, tenant_id: uuid.UUID | None = None, *, request_id: str | None = None) -> Ctx:
    """Turn a login token or an API key into a context for one tenant.

    `tenant_id` picks one of the user's tenants (403 if not a member).
    """
    request_id = request_id or new_request_id()
    if not token:
        raise Unauthorized("authentication required: send 'Authorization: Bearer <token>'")
    if token.startswith(apikeys.KEY_PREFIX):
        return await apikeys.authenticate(token, tenant_id, request_id=request_id)
    claims = tokens.decode(token)
    tenant = tenant_id or claims.tenant_id
    query = (
        select(User, Membership.role)
        .outerjoin(Membership, (Membership.user_id == User.id) & (Membership.tenant_id == tenant))
        .where(User.id == claims.user_id)
    )
    async with rls_scope(tenant_id=tenant, user_id=claims.user_id, readonly=True) as session:
        row = (await session.exec(query)).first()
    if row is None:
        raise Unauthorized("token is not valid", code="invalid_token")
    user, role = row
    if user.tokens_valid_after and claims.issued_at < user.tokens_valid_after:
        raise Unauthorized("token has been revoked; sign in again", code="token_revoked")
    if role is None:
        raise Forbidden("you are not a member of this tenant", field="X-Tenant-ID" if tenant_id else None)
    return Ctx(tenant_id=tenant, user_id=user.id, role=role, actor=f"user:{user.id}", request_id=request_id)


async def session(token: str, tenant_id: uuid.UUID | None = None) -> Me:
    """The signed-in user behind a token, in one call (the dashboard's session check)."""
    return await me(await authenticate(token, tenant_id))


async def me(ctx: Ctx) -> Me:
    if ctx.user_id is None:  # an API key: it knows only its own tenant
        async with session_scope(ctx, readonly=True) as session:
            tenant = await session.get(Tenant, ctx.tenant_id)
        assert tenant is not None
        info = TenantInfo(tenant_id=tenant.id, name=tenant.name, slug=tenant.slug, role=ctx.role)
        return Me(None, None, ctx.tenant_id, ctx.role, [info], api_key_id=apikeys.key_id_of(ctx))
    async with session_scope(ctx, readonly=True) as session:
        user = await session.get(User, ctx.user_id)
    if user is None:
        raise Unauthorized("token is not valid", code="invalid_token")
    return Me(user.id, user.email, ctx.tenant_id, ctx.role, await _tenants_of(user.id))


# --- members -------------------------------------------------------------------


async def add_member(ctx: Ctx, email: str, role: str) -> MemberInfo:
    """Add an existing account to the caller's tenant.

    Unknown emails are refused rather than pre-created: with no verified
    email channel, whoever signed up first with that address would inherit
    the invitation.
    """
    permissions.require(ctx, "members.manage")
    email = normalize_email(email)
    permissions.require_grantable(ctx, role)
    try:
        async with rls_scope(tenant_id=ctx.tenant_id, user_id=ctx.user_id, email=email) as session:
            user = (await session.exec(select(User).where(User.email == email))).first()
            if user is None:
                raise NotFound(f"no account for {email}; ask them to sign up first", field="email")
            membership = Membership(tenant_id=ctx.tenant_id, user_id=user.id, role=role)
            session.add(membership)
            await session.flush()
            audit.record(session, ctx, "member.added", f"user:{user.id}", {"role": role})
    except IntegrityError:
        raise Conflict(f"{email} is already a member of this tenant", field="email") from None
    return _member_info(membership, user)


async def list_members(ctx: Ctx) -> list[MemberInfo]:
    permissions.require(ctx, "members.read")
    query = (
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.tenant_id == ctx.tenant_id)
        .order_by(Membership.created_at, Membership.id)
    )
    async with session_scope(ctx, readonly=True) as session:
        rows = (await session.exec(query)).all()
    return [_member_info(m, u) for m, u in rows]


async def remove_member(ctx: Ctx, user_id: uuid.UUID) -> None:
    """Remove a member and revoke the API keys they own in this tenant."""
    permissions.require(ctx, "members.manage")
    async with session_scope(ctx) as session:
        membership = await _membership(session, ctx, user_id)
        if membership.role == "owner":
            if ctx.role != "owner":
                raise Forbidden("only an owner can remove an owner")
            await _keep_one_owner(session, ctx)
        await session.delete(membership)
        await apikeys.revoke_owned_by(session, ctx, user_id)
        audit.record(session, ctx, "member.removed", f"user:{user_id}")
    await _announce_membership_change(ctx.tenant_id, user_id)


async def change_member_role(ctx: Ctx, user_id: uuid.UUID, role: str) -> MemberInfo:
    """Give a member another role: nobody grants more than they hold, only owners
    touch an owner, and the tenant keeps at least one owner."""
    permissions.require(ctx, "members.manage")
    permissions.require_grantable(ctx, role)
    async with session_scope(ctx) as session:
        membership = await _membership(session, ctx, user_id)
        user = (await session.exec(select(User).where(User.id == user_id))).one()
        if membership.role == role:
            return _member_info(membership, user)
        if membership.role == "owner":
            if ctx.role != "owner":
                raise Forbidden("only an owner can change an owner's role")
            await _keep_one_owner(session, ctx)
        previous, membership.role = membership.role, role
        session.add(membership)
        await apikeys.revoke_owned_by(session, ctx, user_id, above=role)
        audit.record(session, ctx, "member.role_changed", f"user:{user_id}", {"from": previous, "role": role})
    await _announce_membership_change(ctx.tenant_id, user_id)
    return _member_info(membership, user)


async def _announce_membership_change(tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Tell open streams to re-check access now. Best effort: they also re-check on an interval,
    and the change is committed, so an outage of the bus must not fail the request."""
    try:
        topic = events.channel(tenant_id, MEMBERSHIP_TOPIC)
        await events.get_bus().publish(topic, {"type": "member.changed", "user_id": str(user_id)})
    except ServiceUnavailable:
        log.warning("membership change not announced (event bus unavailable); streams re-check on their interval")


async def _membership(session: AsyncSession, ctx: Ctx, user_id: uuid.UUID) -> Membership:
    query = select(Membership).where(Membership.tenant_id == ctx.tenant_id, Membership.user_id == user_id)
    membership = (await session.exec(query)).first()
    if membership is None:
        raise NotFound("member not found")
    return membership


async def _keep_one_owner(session: AsyncSession, ctx: Ctx) -> None:
    owners = select(Membership.id).where(Membership.tenant_id == ctx.tenant_id, Membership.role == "owner")
    if len((await session.exec(owners)).all()) <= 1:
        raise Conflict("a tenant must keep at least one owner")


def _member_info(membership: Membership, user: User) -> MemberInfo:
    return MemberInfo(
        user_id=user.id,
        email=user.email,
        role=membership.role,
        created_at=membership.created_at,
    )


# --- administration (CLI, seeding) ---------------------------------------------


async def resolve_tenant(ref: str, field: str = "tenant") -> Tenant:
    """A tenant by id or slug, for operators who hold the server's credentials."""
    try:
        tenant_id = uuid.UUID(ref)
    except ValueError:
        tenant_id = None
    async with rls_scope(tenant_id=tenant_id, tenant_slug="" if tenant_id else ref, readonly=True) as session:
        query = select(Tenant).where(Tenant.id == tenant_id) if tenant_id else select(Tenant).where(Tenant.slug == ref)
        tenant = (await session.exec(query)).first()
    if tenant is None:
        raise NotFound(f"no tenant '{ref}'", field=field)
    return tenant


def operator_ctx(tenant_id: uuid.UUID, request_id: str | None = None) -> Ctx:
    """The context of the platform operator (CLI) acting inside one tenant."""
    return Ctx(tenant_id, None, "owner", apikeys.OPERATOR_ACTOR, request_id or new_request_id())


async def add_user(tenant_ref: str, email: str, role: str, password: str | None = None) -> MemberInfo:
    """Operator path: create the account if needed (with a password), then add it."""
    email = normalize_email(email)
    permissions.check_role(role)
    tenant = await resolve_tenant(tenant_ref)
    if password is not None:
        check_password(password, email)
        password_hash = await passwords.hash_password(password)
        new_user_id = uuid.uuid4()  # the `users.self` policy admits the insert (the email lookup only reads)
        try:
            async with rls_scope(email=email, user_id=new_user_id) as session:
                if (await session.exec(select(User).where(User.email == email))).first() is None:
                    session.add(User(id=new_user_id, email=email, password_hash=password_hash))
        except IntegrityError:
            pass  # created concurrently: add that account
    return await add_member(operator_ctx(tenant.id), email, role)


async def tenants_of_email(email: str) -> list[TenantInfo]:
    email = normalize_email(email)
    async with rls_scope(email=email, readonly=True) as session:
        user = (await session.exec(select(User).where(User.email == email))).first()
    return await _tenants_of(user.id) if user else []
