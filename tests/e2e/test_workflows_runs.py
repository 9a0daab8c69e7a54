"""The Workflows and Runs pages in a real browser: write the demo workflow in the
editor (with a validation error on the way), save it, run it, watch it wait for
approval, approve, see it succeed; cancel and rerun; a second tenant sees none of it."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

PASSWORD = "violet-harbor-1987"
REPO = Path(__file__).resolve().parents[2]
RESEARCH_BRIEF = (REPO / "atom_core" / "workflows" / "demos" / "research-brief.yaml").read_text()
AGENTS = ("data-analyst", "meeting-facilitator")  # the agents research-brief names
STEPS = ("research", "outline", "review", "write")
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
RUN_TIMEOUT_MS = 60_000


def _url(path: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(path)}/?$")


def sign_up(page: Page, base_url: str, workspace: str) -> str:
    email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
    page.goto(f"{base_url}/signup")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Workspace name", exact=True).fill(workspace)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(_url("/marketplace"), timeout=30_000)
    return email


def _api_headers(page: Page) -> dict[str, str]:
    """The signed-in session's token, as the dashboard keeps it, for REST calls."""
    token = page.evaluate("() => window.localStorage.getItem('atom_token')")
    tenant = page.evaluate("() => window.localStorage.getItem('atom_tenant')")
    assert token, "no session token in localStorage"
    return {"Authorization": f"Bearer {token}", **({"X-Tenant-ID": tenant} if tenant else {})}


def install_agents(page: Page, base_url: str) -> None:
    """The marketplace templates the demo workflow uses, through the API (the marketplace service)."""
    headers = _api_headers(page)
    for template in AGENTS:
        response = page.request.post(f"{base_url}/api/v1/marketplace/{template}/install", headers=headers)
        assert response.status == 201, response.text()


def create_workflow_via_api(page: Page, base_url: str) -> str:
    response = page.request.post(
        f"{base_url}/api/v1/workflows", headers=_api_headers(page), data={"spec": RESEARCH_BRIEF}
    )
    assert response.status == 201, response.text()
    return response.json()["id"]


def _spec_editor(page: Page):
    return page.get_by_label("Spec (YAML or JSON)")


def start_run(page: Page, topic: str) -> str:
    page.get_by_role("button", name="Run", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("#run-input-topic")).to_be_visible(timeout=15_000)
    dialog.locator("#run-input-topic").fill(topic)
    dialog.get_by_role("button", name="Start run").click()
    expect(page).to_have_url(re.compile(rf"/runs/{UUID}/?$"), timeout=30_000)
    return page.url.rstrip("/").rsplit("/", 1)[-1]


def _step_status(page: Page, step: str):
    return page.get_by_test_id(f"step-status-{step}")


def test_write_run_approve_and_isolation(page: Page, base_url: str, snap) -> None:
    sign_up(page, base_url, "E2E Flows")
    install_agents(page, base_url)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Workflows").click()
    expect(page).to_have_url(_url("/workflows"))
    expect(page.get_by_test_id("workflows-empty")).to_be_visible(timeout=15_000)
    snap("workflows-empty")

    page.get_by_role("button", name="New workflow").first.click()
    expect(page).to_have_url(_url("/workflows/new"))
    editor = _spec_editor(page)
    expect(editor).to_be_visible(timeout=15_000)
    # The page's on_load puts the starter spec in the editor: typing before it lands is overwritten.
    expect(page.get_by_test_id("spec-valid")).to_be_visible(timeout=15_000)

    # A broken edit: the engine's message and the field it names, under the editor.
    editor.fill(RESEARCH_BRIEF.replace("depends_on: [research]", "depends_on: [reserch]"))
    expect(page.get_by_test_id("spec-error")).to_contain_text("unknown step 'reserch'", timeout=15_000)
    expect(page.get_by_test_id("spec-error")).to_contain_text("did you mean 'research'")
    expect(page.get_by_test_id("spec-error-field")).to_have_text("spec.steps[1].depends_on")
    expect(page.locator(".react-flow__node.dag-error")).to_have_count(1)
    expect(page.locator(".react-flow__node.dag-error")).to_contain_text("outline")
    snap("editor-validation-error")

    editor.fill(RESEARCH_BRIEF)
    expect(page.get_by_test_id("spec-valid")).to_contain_text("Valid: 4 steps", timeout=15_000)
    expect(page.locator(".react-flow__node")).to_have_count(4)
    expect(page.locator(".react-flow__edge")).to_have_count(3)
    snap("editor-with-graph")

    page.get_by_role("button", name="Save workflow").click()
    expect(page).to_have_url(re.compile(rf"/workflows/{UUID}/?$"), timeout=15_000)
    expect(page.get_by_role("heading", name="research-brief")).to_be_visible()
    expect(page.get_by_test_id("unsaved")).to_have_count(0)

    run_id = start_run(page, "solar power")
    expect(page.get_by_test_id("run-status")).to_have_text("waiting", timeout=RUN_TIMEOUT_MS)
    approval = page.get_by_test_id("approval-review")
    expect(approval).to_be_visible()
    expect(_step_status(page, "research")).to_have_text("succeeded")
    expect(_step_status(page, "write")).to_have_text("pending")
    expect(page.locator(".react-flow__node.dag-status-waiting")).to_have_count(1)
    expect(page.locator(".react-flow__node.dag-status-succeeded")).to_have_count(2)
    expect(page.get_by_test_id("step-row-research")).to_contain_text("solar power")
    snap("run-waiting")

    approval.get_by_label("Comment (optional)").fill("Outline looks right.")
    page.get_by_role("button", name="Approve review").click()
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=RUN_TIMEOUT_MS)
    for step in STEPS:
        expect(_step_status(page, step)).to_have_text("succeeded")
    expect(page.locator(".react-flow__node.dag-status-succeeded")).to_have_count(4)
    expect(page.get_by_test_id("approval-review")).to_have_count(0)
    expect(page.get_by_test_id("step-row-review")).to_contain_text("Outline looks right.")
    expect(page.get_by_test_id("run-output")).to_be_visible()
    expect(page.get_by_test_id("run-total-cost")).to_have_text(re.compile(r"^\$\d"))
    snap("run-succeeded")
    page.get_by_role("button", name="Show the full output of research").click()
    expect(page.get_by_test_id("step-output-research")).to_contain_text("Collect the key facts", timeout=15_000)
    page.get_by_role("button", name="Hide the output of research").click()
    expect(page.get_by_test_id("step-output-research")).to_have_count(0)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs").click()
    expect(page.get_by_test_id(f"run-row-{run_id}")).to_contain_text("succeeded", timeout=15_000)
    snap("runs")
    page.get_by_role("combobox", name="Filter by status").click()
    page.get_by_role("option", name="Waiting").click()
    expect(page.get_by_test_id("runs-empty")).to_be_visible(timeout=15_000)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Workflows").click()
    expect(page.get_by_test_id("workflow-row-research-brief")).to_contain_text("v1", timeout=15_000)
    snap("workflows")

    # A second tenant sees none of it, through the pages or by guessing the run's address.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(_url("/login"))
    sign_up(page, base_url, "E2E Outsiders")
    page.goto(f"{base_url}/workflows")
    expect(page.get_by_test_id("workflows-empty")).to_be_visible(timeout=15_000)
    page.goto(f"{base_url}/runs")
    expect(page.get_by_test_id("runs-empty")).to_be_visible(timeout=15_000)
    page.goto(f"{base_url}/runs/{run_id}")
    expect(page.get_by_role("alert")).to_contain_text("not found", timeout=15_000)
    assert page.request.get(f"{base_url}/api/v1/runs/{run_id}", headers=_api_headers(page)).status == 404
    snap("other-tenant-run")


def test_cancel_and_rerun_from_a_step(page: Page, base_url: str, snap) -> None:
    sign_up(page, base_url, "E2E Reruns")
    install_agents(page, base_url)
    workflow_id = create_workflow_via_api(page, base_url)

    page.goto(f"{base_url}/workflows/{workflow_id}")
    expect(page.get_by_test_id("spec-valid")).to_be_visible(timeout=15_000)
    first = start_run(page, "tides")
    expect(page.get_by_test_id("run-status")).to_have_text("waiting", timeout=RUN_TIMEOUT_MS)
    page.get_by_role("button", name="Cancel run").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Cancel run").click()
    expect(page.get_by_test_id("run-status")).to_have_text("cancelled", timeout=15_000)
    expect(_step_status(page, "review")).to_have_text("cancelled")
    expect(page.locator(".react-flow__node.dag-status-cancelled")).to_have_count(2)
    snap("run-cancelled")

    # Rerun from the approval: research and outline are reused, the review waits again.
    page.get_by_role("button", name="Rerun from a step").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("combobox", name="Step to rerun from").click()
    page.get_by_role("option", name="review").click()
    dialog.get_by_role("button", name="Rerun", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/runs/(?!{first}){UUID}/?$"), timeout=30_000)
    expect(page.get_by_test_id("run-status")).to_have_text("waiting", timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_test_id("run-total-saved")).to_have_text(re.compile(r"^\$\d"))
    expect(page.get_by_test_id("step-row-research")).to_contain_text("reused")
    expect(page.get_by_role("link", name=first[:8])).to_be_visible()
    page.get_by_role("button", name="Toggle light and dark mode").click()
    expect(page.locator("html.dark")).to_have_count(1)
    snap("run-rerun-dark")

    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.get_by_test_id("approval-review")).to_be_visible()
    snap("run-narrow")
    page.get_by_role("button", name="Reject review").click()
    expect(page.get_by_test_id("run-status")).to_have_text("failed", timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_test_id("run-error")).to_contain_text("rejected")
    expect(page.locator(".react-flow__node.dag-status-failed")).to_have_count(1)
