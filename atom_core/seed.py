"""The demo tenant `make run` opens with. Idempotent: run it as often as you like."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlmodel import select

from atom_core.agents import marketplace
from atom_core.context import Ctx
from atom_core.db import rls_scope
from atom_core.errors import Conflict
from atom_core.tenancy import service as tenancy
from atom_core.tenancy.models import User
from atom_core.tenancy.passwords import verify_password
from atom_core.tenancy.validation import normalize_email
from atom_core.workflows import service as workflows

DEMO_TENANT = "Demo"
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "orbit-lattice-42"  # documented in the README; change it on a shared host
DEMO_WORKFLOWS = Path(__file__).parent / "workflows" / "demos"
DEMO_TEMPLATES = ("support-triage", "data-analyst", "meeting-facilitator")  # marketplace templates installed as agents


@dataclass(frozen=True)
class SeedResult:
    created: bool
    tenant_slug: str
    email: str
    password: str
    agents_installed: tuple[str, ...] = ()
    workflows_installed: tuple[str, ...] = ()


async def seed_demo() -> SeedResult:
    existing = [t for t in await tenancy.tenants_of_email(DEMO_EMAIL) if t.name == DEMO_TENANT]
    if existing:
        created, tenant_id, tenant_slug = False, existing[0].tenant_id, existing[0].slug
    else:
        tenant, _ = await tenancy.create_tenant(DEMO_TENANT, DEMO_EMAIL, owner_password=DEMO_PASSWORD)
        created, tenant_id, tenant_slug = True, tenant.id, tenant.slug
    ctx = tenancy.operator_ctx(tenant_id)
    installed = await _install_demo_agents(ctx)
    flows = await _install_demo_workflows(ctx)
    return SeedResult(created, tenant_slug, DEMO_EMAIL, DEMO_PASSWORD, installed, flows)


async def demo_password_unchanged() -> bool:
    """Whether the demo owner can still sign in with the README's password (a server on the network warns)."""
    email = normalize_email(DEMO_EMAIL)
    async with rls_scope(email=email, readonly=True) as session:
        user = (await session.exec(select(User).where(User.email == email))).first()
    return user is not None and await verify_password(user.password_hash, DEMO_PASSWORD)


async def _install_demo_agents(ctx: Ctx) -> tuple[str, ...]:
    """Install each demo template the tenant has no agent from yet; returns the ones installed now."""
    present = await marketplace.installed_templates(ctx)
    installed = []
    for template_slug in DEMO_TEMPLATES:
        if present.get(template_slug):
            continue
        try:
            await marketplace.install(ctx, template_slug)
        except Conflict:
            continue  # an agent already has that slug (made by hand, or a concurrent seed): leave it be
        installed.append(template_slug)
    return tuple(installed)


async def _install_demo_workflows(ctx: Ctx) -> tuple[str, ...]:
    """The demo workflows (research brief with approval, parallel map, conditional branch), once each."""
    installed = []
    for path in sorted(DEMO_WORKFLOWS.glob("*.yaml")):
        try:
            await workflows.create_workflow(ctx, path.read_text())
        except Conflict:
            continue  # already there (a workflow's name is unique in its tenant)
        installed.append(path.stem)
    return tuple(installed)
