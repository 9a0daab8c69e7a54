"""The Marketplace and Agents pages in a real browser: search, detail, install with a
confirmation, create with an inline error, edit, delete, and tenant isolation."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

PASSWORD = "violet-harbor-1987"
OFFLINE = "Offline model (no provider)"


def _url(path: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(path)}/?$")


def sign_up(page: Page, base_url: str, workspace: str = "E2E Agents") -> str:
    email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
    page.goto(f"{base_url}/signup")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Workspace name", exact=True).fill(workspace)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(_url("/marketplace"), timeout=30_000)
    return email


def _search(page: Page, text: str) -> None:
    page.get_by_label("Search templates").fill(text)


def test_marketplace_search_detail_and_install(page: Page, base_url: str, snap) -> None:
    sign_up(page, base_url)
    expect(page.get_by_role("heading", name="Marketplace", exact=True)).to_be_visible()
    expect(page.get_by_test_id("marketplace-count")).to_have_text(re.compile(r"^\d{2,} templates$"), timeout=15_000)
    expect(page.get_by_role("heading", name="Customer support", exact=True)).to_be_visible()
    snap("marketplace")

    _search(page, "zebra quantum nonsense")
    expect(page.get_by_test_id("marketplace-no-results")).to_be_visible()
    snap("marketplace-no-results")
    page.get_by_test_id("marketplace-no-results").get_by_role("button", name="Clear search").click()
    expect(page.get_by_label("Search templates")).to_have_value("")

    _search(page, "tickets")
    expect(page.get_by_test_id("template-card-support-triage")).to_be_visible()
    expect(page.get_by_test_id("template-card-data-analyst")).to_have_count(0)

    page.get_by_role("button", name="Details of Support Ticket Triage").click()
    detail = page.get_by_role("dialog", name="Support Ticket Triage")
    expect(detail).to_be_visible()
    expect(detail.get_by_text("Persona", exact=True)).to_be_visible()
    expect(detail.get_by_test_id("template-prompt")).to_contain_text("ticket")
    expect(detail.get_by_text(OFFLINE)).to_be_visible()
    snap("marketplace-detail")

    detail.get_by_role("button", name="Install", exact=True).click()
    confirm = page.get_by_role("alertdialog")
    expect(confirm).to_contain_text("Install Support Ticket Triage?")
    expect(confirm.get_by_label("Agent slug")).to_have_value("support-triage")
    snap("marketplace-confirm")
    confirm.get_by_role("button", name="Confirm install").click()
    expect(confirm).to_be_hidden()
    expect(page.get_by_text("Installed 'Support Ticket Triage' as agent 'support-triage'.")).to_be_visible()
    expect(detail.get_by_test_id("install-done")).to_be_visible()
    expect(detail.get_by_role("button", name="Install again")).to_be_visible()

    # Installing the same slug again is refused next to the slug, with a free one suggested.
    detail.get_by_role("button", name="Install again").click()
    confirm.get_by_role("button", name="Confirm install").click()
    expect(confirm.get_by_role("alert")).to_contain_text("support-triage-2")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()

    detail.get_by_role("link", name="Open it in Agents").click()
    expect(page).to_have_url(re.compile(r"/agents\?agent=support-triage$"))
    row = page.get_by_test_id("agent-row-support-triage")
    expect(row).to_be_visible(timeout=15_000)
    expect(row).to_contain_text("Support Ticket Triage")
    expect(row).to_contain_text(OFFLINE)
    expect(row.get_by_role("link", name="Chat with Support Ticket Triage")).to_have_attribute(
        "href", "/playground?agent=support-triage"
    )
    snap("agents-after-install")
    page.emulate_media(color_scheme="dark")  # the theme follows the system by default
    snap("agents-dark")
    page.emulate_media(color_scheme="light")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Marketplace").click()
    card = page.get_by_test_id("template-card-support-triage")
    expect(card.get_by_text("Installed", exact=True)).to_be_visible(timeout=15_000)


def test_agents_create_with_inline_error_edit_and_delete(page: Page, base_url: str, snap) -> None:
    sign_up(page, base_url)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Agents").click()
    empty = page.get_by_test_id("agents-empty")
    expect(empty).to_be_visible(timeout=15_000)
    expect(empty.get_by_role("link", name="Browse the Marketplace")).to_have_attribute("href", "/marketplace")
    snap("agents-empty")

    empty.get_by_role("button", name="Create agent").click()
    form = page.get_by_role("dialog", name="Create agent")
    expect(form).to_be_visible()
    form.get_by_label("Name", exact=True).fill("Helper Bot")
    form.get_by_label("Slug", exact=True).fill("Bad Slug!")
    form.get_by_label("System prompt").fill("Answer in one sentence.")
    form.get_by_role("checkbox", name="calculator").click()
    form.get_by_role("button", name="Create agent").click()
    slug_error = form.locator("#agent-slug-message")
    expect(slug_error).to_have_text(re.compile(r"^Slug must be"))
    expect(slug_error).to_have_attribute("role", "alert")
    expect(form.get_by_label("Slug", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_label("Slug", exact=True)).to_be_focused()  # scrolled back to the error
    snap("agents-inline-error")

    form.get_by_label("Slug", exact=True).fill("helper-bot")
    form.get_by_role("button", name="Create agent").click()
    expect(form).to_be_hidden()
    row = page.get_by_test_id("agent-row-helper-bot")
    expect(row).to_contain_text("Helper Bot")
    expect(row).to_contain_text("calculator")
    expect(row).to_contain_text(OFFLINE)
    expect(row).to_contain_text("student")
    expect(row.get_by_role("link", name="Chat with Helper Bot")).to_have_attribute(
        "href", "/playground?agent=helper-bot"
    )

    row.get_by_role("button", name="Edit Helper Bot").click()
    form = page.get_by_role("dialog", name="Edit agent")
    expect(form.get_by_label("Name", exact=True)).to_have_value("Helper Bot")
    expect(form.get_by_label("System prompt")).to_have_value("Answer in one sentence.")
    expect(form.get_by_role("checkbox", name="calculator")).to_be_checked()
    form.get_by_label("Name", exact=True).fill("Helper Prime")
    form.get_by_label("Temperature").fill("5")
    form.get_by_role("button", name="Save changes").click()
    expect(form.locator("#agent-temperature-message")).to_have_text("Temperature must be between 0 and 2")
    form.get_by_label("Temperature").fill("0.2")
    form.get_by_role("checkbox", name="datetime_now").click()
    form.get_by_role("button", name="Save changes").click()
    expect(form).to_be_hidden()
    expect(row).to_contain_text("Helper Prime")
    expect(row).to_contain_text("datetime_now")
    snap("agents-list")

    page.reload()
    expect(row).to_contain_text("Helper Prime", timeout=15_000)

    row.get_by_role("button", name="Delete Helper Prime").click()
    confirm = page.get_by_role("alertdialog")
    expect(confirm).to_contain_text("Delete Helper Prime?")
    snap("agents-delete-confirm")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    expect(row).to_be_visible()

    row.get_by_role("button", name="Delete Helper Prime").click()
    confirm.get_by_role("button", name="Delete agent").click()
    expect(row).to_have_count(0)
    expect(page.get_by_test_id("agents-empty")).to_be_visible()


def test_second_tenant_sees_none_of_the_first_tenants_agents(page: Page, browser, base_url: str, snap) -> None:
    sign_up(page, base_url, "First Tenant")
    page.get_by_role("button", name="Details of Data Analyst").click()
    page.get_by_role("dialog").get_by_role("button", name="Install", exact=True).click()
    page.get_by_role("alertdialog").get_by_role("button", name="Confirm install").click()
    expect(page.get_by_test_id("install-done")).to_be_visible()
    page.goto(f"{base_url}/agents")
    expect(page.get_by_test_id("agent-row-data-analyst")).to_be_visible(timeout=15_000)

    other_context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        other = other_context.new_page()
        sign_up(other, base_url, "Second Tenant")
        expect(other.get_by_test_id("template-card-data-analyst")).to_be_visible(timeout=15_000)
        expect(other.get_by_test_id("template-card-data-analyst").get_by_text("Installed", exact=True)).to_have_count(0)
        other.goto(f"{base_url}/agents")
        expect(other.get_by_test_id("agents-empty")).to_be_visible(timeout=15_000)
        expect(other.get_by_test_id("agent-row-data-analyst")).to_have_count(0)
        other.goto(f"{base_url}/agents?agent=data-analyst")
        expect(other.get_by_test_id("agents-empty")).to_be_visible(timeout=15_000)
    finally:
        other_context.close()


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}], ids=["phone"])
def test_marketplace_and_agents_fit_a_narrow_screen(page: Page, base_url: str, snap) -> None:
    sign_up(page, base_url)
    expect(page.get_by_test_id("template-card-data-analyst")).to_be_visible(timeout=15_000)
    snap("narrow-marketplace")
    page.get_by_role("button", name="Details of Data Analyst").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    snap("narrow-detail")
    page.keyboard.press("Escape")
    page.goto(f"{base_url}/agents")
    expect(page.get_by_test_id("agents-empty")).to_be_visible(timeout=15_000)
    snap("narrow-agents")
    # Nothing wider than the window: no sideways scrolling of the page itself.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390


def test_switching_workspace_reloads_the_agents_list(page: Page, base_url: str, atom) -> None:
    email = sign_up(page, base_url, "Home Lab")
    atom("tenant", "create", "Other Lab", "--owner-email", email)
    page.goto(f"{base_url}/agents")
    page.get_by_test_id("agents-empty").get_by_role("button", name="Create agent").click()
    form = page.get_by_role("dialog", name="Create agent")
    form.get_by_label("Name", exact=True).fill("Home Agent")
    form.get_by_label("Slug", exact=True).fill("home-agent")
    form.get_by_role("button", name="Create agent").click()
    expect(page.get_by_test_id("agent-row-home-agent")).to_be_visible()

    switcher = page.get_by_role("combobox", name="Switch workspace")
    switcher.click()
    page.get_by_role("option", name="Other Lab").click()
    expect(page.get_by_test_id("agents-empty")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("agent-row-home-agent")).to_have_count(0)

    switcher.click()
    page.get_by_role("option", name="Home Lab").click()
    expect(page.get_by_test_id("agent-row-home-agent")).to_be_visible(timeout=15_000)
