"""The demo tenant `make run` opens with. Idempotent: run it as often as you like."""

from __future__ import annotations

from dataclasses import dataclass

from atom_core.tenancy import service as tenancy

DEMO_TENANT = "Demo"
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "orbit-lattice-42"  # documented in the README; change it on a shared host


@dataclass(frozen=True)
class SeedResult:
    created: bool
    tenant_slug: str
    email: str
    password: str


async def seed_demo() -> SeedResult:
    existing = [t for t in await tenancy.tenants_of_email(DEMO_EMAIL) if t.name == DEMO_TENANT]
    if existing:
        return SeedResult(False, existing[0].slug, DEMO_EMAIL, DEMO_PASSWORD)
    tenant, _ = await tenancy.create_tenant(DEMO_TENANT, DEMO_EMAIL, owner_password=DEMO_PASSWORD)
    return SeedResult(True, tenant.slug, DEMO_EMAIL, DEMO_PASSWORD)
