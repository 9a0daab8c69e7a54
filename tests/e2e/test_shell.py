"""The login/signup pages and the authenticated shell, in a real browser."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

PASSWORD = "violet-harbor-1987"
NAV_LABELS = ("Marketplace", "Agents", "Playground", "Workflows", "Runs", "Analytics", "Governance", "Settings")


def _new_email() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}@example.com"


def _url(path: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(path)}/?$")


def sign_up(page: Page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/signup")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Workspace name", exact=True).fill("E2E Research")
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(_url("/marketplace"), timeout=30_000)


def test_signup_lands_in_shell_survives_reload_and_signs_out(page: Page, base_url: str, snap) -> None:
    email = _new_email()
    page.goto(f"{base_url}/signup")
    snap("signup")
    sign_up(page, base_url, email)

    nav = page.get_by_role("navigation", name="Main")
    for label in NAV_LABELS:
        expect(nav.get_by_role("link", name=label)).to_be_visible()
    expect(page.get_by_test_id("user-email")).to_have_text(email)
    expect(page.get_by_text("E2E Research")).to_be_visible()
    snap("marketplace")

    page.reload()
    expect(page.get_by_test_id("user-email")).to_have_text(email, timeout=15_000)
    expect(page).to_have_url(_url("/marketplace"))
    page.goto(f"{base_url}/")
    expect(page).to_have_url(_url("/marketplace"))

    nav.get_by_role("link", name="Agents").click()
    expect(page).to_have_url(_url("/agents"))
    expect(page.get_by_role("heading", name="Agents", exact=True)).to_be_visible()
    snap("agents")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(_url("/login"))
    snap("signed-out")

    page.goto(f"{base_url}/agents")
    expect(page).to_have_url(_url("/login"))


def test_wrong_password_shows_error(page: Page, base_url: str, snap) -> None:
    email = _new_email()
    sign_up(page, base_url, email)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(_url("/login"))

    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill("not-the-password-1")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text(re.compile("incorrect", re.IGNORECASE))
    expect(page).to_have_url(_url("/login"))
    snap("wrong-password")

    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(_url("/marketplace"), timeout=30_000)
    expect(page.get_by_test_id("user-email")).to_have_text(email)


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}], ids=["phone"])
def test_narrow_screen_navigates_through_menu(page: Page, base_url: str, snap) -> None:
    sign_up(page, base_url, _new_email())
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    snap("narrow-marketplace")

    page.get_by_role("button", name="Open navigation").click()
    page.get_by_role("menuitem", name="Runs").click()
    expect(page).to_have_url(_url("/runs"))
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
    snap("narrow-runs")


def test_tenant_switcher_changes_and_remembers_workspace(
    page: Page, base_url: str, atom: Callable[..., str], snap
) -> None:
    email = _new_email()
    sign_up(page, base_url, email)
    atom("tenant", "create", "Second Lab", "--owner-email", email)  # no UI for a second tenant yet
    page.reload()

    switcher = page.get_by_role("combobox", name="Switch workspace")
    expect(switcher).to_have_text("E2E Research", timeout=15_000)
    switcher.click()
    page.get_by_role("option", name="Second Lab").click()
    expect(switcher).to_have_text("Second Lab")
    snap("switched-tenant")

    page.reload()
    expect(switcher).to_have_text("Second Lab", timeout=15_000)
