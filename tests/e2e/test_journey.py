"""A new user's whole journey through the dashboard, in one browser (issue 5, item 9).

Sign up; install a marketplace template through its confirmation; chat with it in
the Playground and see the streamed answer with its cost line; find that run in
Analytics with the same cost as the REST API reports; install the agents the demo
research-brief workflow needs, write it in the editor, run it, approve its review
and see it succeed; then a second tenant, in a fresh browser context, sees none of it.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from atom_ui.states.analytics import count, usd

pytestmark = pytest.mark.e2e

PASSWORD = "violet-harbor-1987"
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).parent / "artifacts"
RESEARCH_BRIEF = (REPO / "atom_core" / "workflows" / "demos" / "research-brief.yaml").read_text()
STEPS = ("research", "outline", "review", "write")
CHAT_TEMPLATE = ("experiment-analyst", "Experiment Analyst")  # has the calculator tool
FLOW_TEMPLATES = (("data-analyst", "Data Analyst"), ("meeting-facilitator", "Meeting Facilitator"))
QUESTION = "What is 12 * (3 + 4)?"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
MONEY = re.compile(r"\$[\d,]+\.\d{6}")
LOAD_MS = 15_000
# Records each text the answer shows while it streams (the live turn, before the run ends).
WATCH_LIVE_ANSWER = """() => {
  window.__liveTexts = [];
  new MutationObserver(() => {
    const live = document.querySelector('[data-testid="live-answer"]');
    const text = live ? live.textContent : "";
    const seen = window.__liveTexts;
    if (text && seen[seen.length - 1] !== text) seen.push(text);
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""
RUN_MS = 60_000


def _url(path: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(path)}/?$")


def _nav(page: Page, label: str, path: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=label).click()
    expect(page).to_have_url(_url(path))


def sign_up(page: Page, base_url: str, workspace: str) -> str:
    email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
    page.goto(f"{base_url}/signup")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Workspace name", exact=True).fill(workspace)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(_url("/marketplace"), timeout=30_000)
    expect(page.get_by_test_id("user-email")).to_have_text(email)
    return email


def _headers(page: Page) -> dict[str, str]:
    """The signed-in session as the dashboard keeps it, for REST calls from the same browser."""
    token = page.evaluate("() => window.localStorage.getItem('atom_token')")
    tenant = page.evaluate("() => window.localStorage.getItem('atom_tenant')")
    assert token, "no session token in localStorage"
    headers = {"Authorization": "Bearer " + token.strip('"')}
    if tenant:
        headers["X-Tenant-ID"] = tenant.strip('"')
    return headers


def _api(page: Page, base_url: str, path: str, **params: str) -> tuple[int, dict]:
    response = page.request.get(f"{base_url}{path}", headers=_headers(page), params=params or None)
    return response.status, response.json()


def install_from_marketplace(page: Page, slug: str, name: str) -> None:
    """Details -> Install -> the confirmation -> installed, all through the page."""
    page.get_by_label("Search templates").fill(name)
    card = page.get_by_test_id(f"template-card-{slug}")
    expect(card).to_be_visible(timeout=LOAD_MS)
    card.get_by_role("button", name=f"Details of {name}").click()
    detail = page.get_by_role("dialog", name=name)
    expect(detail).to_be_visible()
    detail.get_by_role("button", name="Install", exact=True).click()
    confirm = page.get_by_role("alertdialog")
    expect(confirm).to_contain_text(f"Install {name}?")
    expect(confirm.get_by_label("Agent slug")).to_have_value(slug)
    confirm.get_by_role("button", name="Confirm install").click()
    expect(confirm).to_be_hidden()
    expect(detail.get_by_test_id("install-done")).to_be_visible()
    expect(page.get_by_text(f"Installed '{name}' as agent '{slug}'.")).to_be_visible()


def kpi(page: Page, key: str):
    return page.get_by_test_id(f"kpi-{key}")


def test_new_user_journey_and_a_second_tenant_sees_none_of_it(page: Page, browser, base_url: str, snap) -> None:
    # 1. Sign up: the shell opens on the Marketplace.
    sign_up(page, base_url, "Journey Lab")
    expect(page.get_by_test_id("marketplace-count")).to_have_text(re.compile(r"^\d{2,} templates$"), timeout=LOAD_MS)
    snap("marketplace")

    # 2. Install a template, with its confirmation; it is now an agent.
    slug, name = CHAT_TEMPLATE
    install_from_marketplace(page, slug, name)
    snap("marketplace-installed")
    page.get_by_role("dialog", name=name).get_by_role("link", name="Open it in Agents").click()
    row = page.get_by_test_id(f"agent-row-{slug}")
    expect(row).to_be_visible(timeout=LOAD_MS)
    expect(row).to_contain_text(name)
    snap("agents")

    # 3. Chat with it: the streamed answer, its tool card and its cost line.
    row.get_by_role("link", name=f"Chat with {name}").click()
    expect(page).to_have_url(re.compile(rf"/playground\?agent={slug}$"))
    expect(page.get_by_role("combobox", name="Agent")).to_have_text(f"{name} ({slug})", timeout=LOAD_MS)
    page.evaluate(WATCH_LIVE_ANSWER)
    page.get_by_label("Message", exact=True).fill(QUESTION)
    page.get_by_role("button", name="Send").click()
    turn = page.get_by_test_id("turn")
    expect(turn).to_have_count(1, timeout=RUN_MS)  # the first run loads the model layer
    # It was shown while the run streamed (the live turn), then kept as the turn's answer.
    # (The offline model sends its answer as one chunk, so there is one live text, not one per token.)
    live = page.evaluate("() => window.__liveTexts")
    assert live and "84" in live[-1], live
    expect(turn.get_by_test_id("user-message")).to_have_text(QUESTION)
    expect(turn.get_by_test_id("answer")).to_contain_text("84")
    expect(turn.get_by_test_id("tool-card")).to_contain_text("calculator")
    meta = turn.get_by_test_id("turn-meta")
    expect(meta).to_contain_text(re.compile(r"\d+ tokens \(\d+ prompt \+ \d+ completion\) · \$[\d,]+\.\d{6} · \d+ ms"))
    chat_cost = MONEY.search(meta.inner_text()).group(0)
    snap("playground")

    # 4. Analytics counts that run, with the cost the API reports for the same (default) range.
    _nav(page, "Analytics", "/analytics")
    expect(kpi(page, "runs")).to_have_text("1", timeout=LOAD_MS)
    status, summary = _api(page, base_url, "/api/v1/analytics/summary")
    assert status == 200, summary
    totals = summary["totals"]
    assert totals["runs"] == 1
    expect(kpi(page, "runs")).to_have_text(count(totals["runs"]))
    expect(kpi(page, "spend")).to_have_text(usd(round(totals["spend_usd"] * 1_000_000)))
    expect(kpi(page, "spend")).to_have_text(chat_cost)  # the one run's cost, as the Playground showed it
    expect(page.get_by_test_id("recent-run")).to_have_count(1)
    expect(page.get_by_test_id("recent-run")).to_contain_text(slug)
    snap("analytics")

    # 5. The agents the demo workflow names, from the Marketplace too.
    _nav(page, "Marketplace", "/marketplace")
    expect(page.get_by_test_id("marketplace-count")).to_be_visible(timeout=LOAD_MS)
    expect(page.get_by_role("dialog")).to_have_count(0)  # the detail left open before is closed on return
    for flow_slug, flow_name in FLOW_TEMPLATES:
        install_from_marketplace(page, flow_slug, flow_name)
        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_have_count(0)
    _nav(page, "Agents", "/agents")
    for agent_slug in (slug, *(s for s, _ in FLOW_TEMPLATES)):
        expect(page.get_by_test_id(f"agent-row-{agent_slug}")).to_be_visible(timeout=LOAD_MS)

    # 6. Write the demo workflow in the editor: validated, drawn, saved.
    _nav(page, "Workflows", "/workflows")
    expect(page.get_by_test_id("workflows-empty")).to_be_visible(timeout=LOAD_MS)
    page.get_by_role("button", name="New workflow").first.click()
    expect(page).to_have_url(_url("/workflows/new"))
    editor = page.get_by_label("Spec (YAML or JSON)")
    expect(editor).to_be_visible(timeout=LOAD_MS)
    # The page's on_load puts the starter spec in the editor: typing before it lands is overwritten.
    expect(page.get_by_test_id("spec-valid")).to_be_visible(timeout=LOAD_MS)
    editor.fill(RESEARCH_BRIEF)
    expect(page.get_by_test_id("spec-valid")).to_contain_text("Valid: 4 steps", timeout=LOAD_MS)
    expect(page.locator(".react-flow__node")).to_have_count(4)
    snap("workflow-editor")
    page.get_by_role("button", name="Save workflow").click()
    expect(page).to_have_url(re.compile(rf"/workflows/{UUID}/?$"), timeout=LOAD_MS)
    expect(page.get_by_role("heading", name="research-brief")).to_be_visible()

    # 7. Run it; it waits for the review; approve it; it succeeds.
    page.get_by_role("button", name="Run", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("#run-input-topic")).to_be_visible(timeout=LOAD_MS)
    dialog.locator("#run-input-topic").fill("tidal energy")
    dialog.get_by_role("button", name="Start run").click()
    expect(page).to_have_url(re.compile(rf"/runs/{UUID}/?$"), timeout=30_000)
    run_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    expect(page.get_by_test_id("run-status")).to_have_text("waiting", timeout=RUN_MS)
    approval = page.get_by_test_id("approval-review")
    expect(approval).to_be_visible()
    expect(page.get_by_test_id("step-status-outline")).to_have_text("succeeded")
    expect(page.get_by_test_id("step-status-write")).to_have_text("pending")
    snap("run-waiting")
    page.get_by_role("button", name="Approve review").click()
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=RUN_MS)
    for step in STEPS:
        expect(page.get_by_test_id(f"step-status-{step}")).to_have_text("succeeded")
    expect(page.get_by_test_id("approval-review")).to_have_count(0)
    expect(page.get_by_test_id("run-output")).to_be_visible()
    snap("run-succeeded")
    status, run = _api(page, base_url, f"/api/v1/runs/{run_id}")
    assert status == 200 and run["status"] == "succeeded", run

    _nav(page, "Runs", "/runs")
    expect(page.get_by_test_id(f"run-row-{run_id}")).to_contain_text("succeeded", timeout=LOAD_MS)
    snap("runs")
    _nav(page, "Workflows", "/workflows")
    expect(page.get_by_test_id("workflow-row-research-brief")).to_be_visible(timeout=LOAD_MS)
    snap("workflows")

    # The workflow's agent steps are runs too: Analytics still equals the API.
    _nav(page, "Analytics", "/analytics")
    status, summary = _api(page, base_url, "/api/v1/analytics/summary")
    assert status == 200 and summary["totals"]["runs"] >= 1, summary
    expect(kpi(page, "runs")).to_have_text(count(summary["totals"]["runs"]), timeout=LOAD_MS)
    expect(kpi(page, "spend")).to_have_text(usd(round(summary["totals"]["spend_usd"] * 1_000_000)))
    _nav(page, "Settings", "/settings")
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
    snap("settings")

    # 8. A second tenant, in a fresh browser context, sees none of it.
    other_context: BrowserContext = browser.new_context(viewport={"width": 1280, "height": 800})
    other = other_context.new_page()
    try:
        check_second_tenant_sees_nothing(other, base_url, run_id, slug)
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        other.screenshot(path=ARTIFACTS / "test_new_user_journey-second-tenant-FAILED.png", full_page=True)
        raise
    finally:
        other_context.close()


def check_second_tenant_sees_nothing(other: Page, base_url: str, run_id: str, slug: str) -> None:
    def shot(name: str) -> None:
        other.screenshot(path=ARTIFACTS / f"test_new_user_journey-second-tenant-{name}.png", full_page=True)

    sign_up(other, base_url, "Journey Outsiders")
    card = other.get_by_test_id(f"template-card-{slug}")
    expect(card).to_be_visible(timeout=LOAD_MS)
    expect(card.get_by_text("Installed", exact=True)).to_have_count(0)

    _nav(other, "Agents", "/agents")
    expect(other.get_by_test_id("agents-empty")).to_be_visible(timeout=LOAD_MS)
    expect(other.get_by_test_id(f"agent-row-{slug}")).to_have_count(0)
    shot("agents")
    _nav(other, "Workflows", "/workflows")
    expect(other.get_by_test_id("workflows-empty")).to_be_visible(timeout=LOAD_MS)
    _nav(other, "Runs", "/runs")
    expect(other.get_by_test_id("runs-empty")).to_be_visible(timeout=LOAD_MS)
    _nav(other, "Analytics", "/analytics")
    expect(kpi(other, "runs")).to_have_text("0", timeout=LOAD_MS)
    expect(kpi(other, "spend")).to_have_text(usd(0))
    expect(other.get_by_test_id("recent-run")).to_have_count(0)
    shot("analytics")

    # Nor by asking the API, nor by guessing the run's address.
    for path in ("/api/v1/agents", "/api/v1/workflows"):
        status, listing = _api(other, base_url, path)
        assert status == 200 and listing["items"] == [], (path, listing)
    status, summary = _api(other, base_url, "/api/v1/analytics/summary")
    assert status == 200 and summary["totals"]["runs"] == 0 and summary["totals"]["spend_usd"] == 0, summary
    assert _api(other, base_url, f"/api/v1/runs/{run_id}")[0] == 404
    other.goto(f"{base_url}/runs/{run_id}")
    expect(other.get_by_role("alert")).to_contain_text("not found", timeout=LOAD_MS)
    shot("run-not-found")
