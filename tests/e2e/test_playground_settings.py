"""The Playground and Settings pages in a real browser: a streamed answer with its tool
card and cost, a session that continues, a plain error with a hint; an API key shown
once then revoked, a provider key shown only as its hint, members and roles."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

PASSWORD = "violet-harbor-1987"
QUESTION = "What is 12 * (3 + 4)?"
PROVIDER_KEY = "sk-e2e-abcdefghijklmnop9876"


def _url(path: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(path)}/?$")


def sign_up(page: Page, base_url: str, workspace: str = "E2E Playground") -> tuple[str, str]:
    """Sign up a new tenant; (email, tenant id)."""
    email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
    page.goto(f"{base_url}/signup")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Workspace name", exact=True).fill(workspace)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(_url("/marketplace"), timeout=30_000)
    tenant = page.evaluate("() => window.localStorage.getItem('atom_tenant')")
    assert tenant, "no tenant in localStorage"
    return email, tenant.strip('"')


def _api(base_url: str, method: str, path: str, body: dict | None = None, token: str = "") -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{base_url}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _send(page: Page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_role("button", name="Send").click()


def test_playground_streams_an_answer_with_tool_card_and_cost(
    page: Page, base_url: str, atom: Callable[..., str], snap
) -> None:
    _, tenant = sign_up(page, base_url)
    atom("agent", "create", "--tenant", tenant, "calc", "--name", "Calculator", "--tools", "calculator")
    atom("agent", "create", "--tenant", tenant, "gpt", "--name", "Cloud Helper", "--model", "openai/gpt-4o-mini")

    page.goto(f"{base_url}/playground?agent=calc")
    expect(page.get_by_role("heading", name="Playground", exact=True)).to_be_visible()
    expect(page.get_by_role("combobox", name="Agent")).to_have_text("Calculator (calc)", timeout=15_000)
    expect(page.get_by_text("Send a message to start the conversation.")).to_be_visible()
    snap("playground-empty")

    _send(page, QUESTION)
    turns = page.get_by_test_id("turn")
    expect(turns).to_have_count(1, timeout=60_000)  # the first run loads the model layer
    first = turns.nth(0)
    expect(first.get_by_test_id("user-message")).to_have_text(QUESTION)
    expect(first.get_by_test_id("answer")).to_contain_text("84")
    card = first.get_by_test_id("tool-card")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("calculator")
    expect(card.get_by_text("Arguments")).to_be_hidden()  # folded until opened
    card.get_by_label("Tool call calculator").click()
    expect(card.get_by_text("Arguments")).to_be_visible()
    expect(card).to_contain_text('"expression": "12 * (3 + 4)"')
    expect(card).to_contain_text('"result": 84')
    meta = first.get_by_test_id("turn-meta")
    expect(meta).to_contain_text("$0.000000")
    expect(meta).to_contain_text(re.compile(r"\d+ tokens \(\d+ prompt \+ \d+ completion\) · \$0\.000000 · \d+ ms"))
    expect(first.get_by_text("atom/offline (offline)")).to_be_visible()
    expect(page.get_by_label("Message", exact=True)).to_have_value("")
    snap("playground-answer")

    # The same session continues: the offline model answers from the conversation.
    _send(page, "What did I ask before?")
    expect(turns).to_have_count(2, timeout=30_000)
    expect(turns.nth(1).get_by_test_id("answer")).to_contain_text("84")
    expect(turns.nth(1).get_by_test_id("turn-meta")).to_contain_text("$0.000000")
    snap("playground-second-turn")

    # A new chat starts empty; the recent-chats menu brings the first one back.
    page.get_by_role("button", name="New chat").click()
    expect(turns).to_have_count(0)
    page.get_by_role("button", name="Recent chats").click()
    item = page.get_by_role("menuitem").filter(has_text=QUESTION)
    expect(item).to_contain_text("2 messages")
    item.click()
    expect(turns).to_have_count(2)

    # An agent whose provider has no key: the error, plainly, with the way out.
    page.get_by_role("combobox", name="Agent").click()
    page.get_by_role("option", name="Cloud Helper (gpt)").click()
    expect(turns).to_have_count(0)
    _send(page, "Hello")
    error = page.get_by_test_id("turn-error")
    expect(error).to_contain_text("No API key for provider 'openai'", timeout=30_000)
    expect(error).to_contain_text("Add a provider key in Settings")
    expect(error.get_by_role("link", name="Open Settings")).to_have_attribute("href", "/settings?tab=providers")
    snap("playground-error")
    error.get_by_role("link", name="Open Settings").click()
    expect(page.get_by_role("tab", name="Providers")).to_have_attribute("aria-selected", "true", timeout=15_000)


def test_answers_render_markdown_but_never_raw_html(page: Page, base_url: str, atom: Callable[..., str], snap) -> None:
    """The offline model repeats the question, so the answer holds what we send."""
    _, tenant = sign_up(page, base_url)
    atom("agent", "create", "--tenant", tenant, "echo", "--name", "Echo")
    page.goto(f"{base_url}/playground?agent=echo")
    expect(page.get_by_role("combobox", name="Agent")).to_have_text("Echo (echo)", timeout=15_000)
    _send(page, 'Say **bold** and `code` <img src=x onerror="window.__pwned=1">')
    answer = page.get_by_test_id("answer")
    expect(answer.locator("strong")).to_have_text("bold", timeout=60_000)
    expect(answer.locator("code")).to_have_text("code")
    expect(answer.locator("img")).to_have_count(0)  # the HTML was not rendered ...
    expect(answer).not_to_contain_text("**")  # ... while the Markdown was
    assert page.evaluate("() => window.__pwned") is None
    snap("playground-markdown")


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}], ids=["phone"])
def test_playground_on_a_narrow_window(page: Page, base_url: str, atom: Callable[..., str], snap) -> None:
    _, tenant = sign_up(page, base_url)
    atom("agent", "create", "--tenant", tenant, "calc", "--name", "Calculator", "--tools", "calculator")
    page.goto(f"{base_url}/playground")
    expect(page.get_by_role("combobox", name="Agent")).to_have_text("Calculator (calc)", timeout=15_000)
    _send(page, QUESTION)
    expect(page.get_by_test_id("answer")).to_contain_text("84", timeout=60_000)
    snap("playground-narrow")


def test_playground_without_agents_says_what_to_do(page: Page, base_url: str, snap) -> None:
    sign_up(page, base_url)
    page.goto(f"{base_url}/playground")
    expect(page.get_by_text("No agent to talk to yet")).to_be_visible(timeout=15_000)
    expect(page.get_by_role("link", name="Open the Marketplace")).to_be_visible()
    snap("playground-no-agents")


def test_settings_api_key_once_provider_hint_and_members(page: Page, base_url: str, snap) -> None:
    colleague = f"e2e-colleague-{uuid.uuid4().hex[:8]}@example.com"
    status, _ = _api(
        base_url,
        "POST",
        "/api/v1/auth/signup",
        {"email": colleague, "password": PASSWORD, "tenant_name": "Colleague's"},
    )
    assert status == 201
    sign_up(page, base_url, "E2E Settings")
    page.goto(f"{base_url}/settings")
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
    expect(page.get_by_text("No provider is configured.")).to_be_visible(timeout=15_000)
    snap("settings-providers-empty")

    # API keys: the whole key once, in a dialog; then only its prefix; revoke after confirming.
    page.get_by_role("tab", name="API keys").click()
    page.get_by_label("Key name").fill("ci-e2e")
    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog", name="Copy your new API key")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("only time the key is shown")
    key = dialog.get_by_test_id("new-api-key").inner_text().strip()
    assert re.fullmatch(r"atom_[0-9a-f]{12}_\S+", key), key
    expect(dialog.get_by_role("button", name="Copy key")).to_be_visible()
    snap("settings-new-key")
    status, me = _api(base_url, "GET", "/api/v1/me", token=key)
    assert status == 200 and me["role"] == "member"
    dialog.get_by_role("button", name="I have stored it").click()
    expect(dialog).to_be_hidden()
    assert key not in page.content()
    row = page.get_by_test_id("apikey-row").filter(has_text="ci-e2e")
    expect(row).to_contain_text("_".join(key.split("_")[:2]))  # atom_<id>; the secret may hold "_" too
    expect(row).to_contain_text("active")
    row.get_by_role("button", name="Revoke ci-e2e").click()
    confirm = page.get_by_role("alertdialog")
    expect(confirm).to_contain_text("Revoke this API key?")
    confirm.get_by_role("button", name="Revoke key").click()
    expect(row).to_contain_text("revoked")
    expect(row.get_by_role("button", name="Revoke ci-e2e")).to_have_count(0)
    assert _api(base_url, "GET", "/api/v1/me", token=key)[0] == 401
    snap("settings-api-keys")

    # Providers: the key goes in, only its last four characters come back.
    page.get_by_role("tab", name="Providers").click()
    page.get_by_role("button", name="Add provider").click()
    form = page.get_by_role("dialog", name="Add a provider")
    form.get_by_label("Provider").fill("not a provider")
    form.get_by_label("API key").fill(PROVIDER_KEY)
    form.get_by_role("button", name="Save").click()
    expect(form.get_by_role("alert")).to_contain_text("Provider must be a LiteLLM provider prefix")
    form.get_by_label("Provider").fill("openai")
    form.get_by_label("API key").fill(PROVIDER_KEY)
    form.get_by_role("button", name="Save").click()
    expect(form).to_be_hidden()
    expect(page.get_by_test_id("provider-key-hint")).to_have_text("…9876")
    assert PROVIDER_KEY not in page.content()
    page.get_by_role("button", name="Test connection").click()
    page.get_by_role("button", name="Run test").click()
    result = page.get_by_test_id("provider-test-result")
    expect(result).to_contain_text(re.compile(r"ok|error"), timeout=40_000)
    snap("settings-providers")
    page.keyboard.press("Escape")

    # Members: add an existing account, change its role, remove it after confirming.
    page.get_by_role("tab", name="Members").click()
    page.get_by_label("Member email").fill("nobody-" + colleague)
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_text("ask them to sign up first")).to_be_visible()
    page.get_by_label("Member email").fill(colleague)
    page.get_by_role("button", name="Add member").click()
    member = page.get_by_test_id("member-row").filter(has_text=colleague)
    expect(member).to_be_visible()
    role = member.get_by_role("combobox", name=f"Role of {colleague}")
    expect(role).to_have_text("member")
    role.click()
    page.get_by_role("option", name="viewer").click()
    expect(role).to_have_text("viewer")
    snap("settings-members")
    member.get_by_role("button", name=f"Remove {colleague}").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Remove member").click()
    expect(member).to_have_count(0)

    page.goto(f"{base_url}/settings?tab=members")
    expect(page.get_by_role("tab", name="Members")).to_have_attribute("aria-selected", "true", timeout=15_000)
    expect(page.get_by_test_id("member-row")).to_have_count(1)
