"""Browser tests: one production build of the app per session, driven by Debian's Chromium.

Set ATOM_E2E_BASE_URL to test an app that is already running instead of
building one. Screenshots and the server log go to tests/e2e/artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from atom_core.interfaces.serve import reflex_command, reflex_environment

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_NAMES = ("chromium", "chromium-browser")  # Debian's, then other distributions'
NO_CHROMIUM = "no Chromium found (apt-get install -y chromium)"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_TIMEOUT_S = 600  # a cold build installs the frontend's npm packages
DESKTOP = {"width": 1280, "height": 800}


def pytest_terminal_summary(terminalreporter) -> None:
    """One line for the only tests a local run may skip: the browser tests, without a browser."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if NO_CHROMIUM in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} browser tests skipped: {NO_CHROMIUM}", yellow=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without Chromium, skip before any fixture runs: the app's session-wide build would come first."""
    if chromium() is not None or os.environ.get("ATOM_TEST_REQUIRE_SERVICES") == "1":
        return  # CI promises Chromium: the `browser` fixture fails there instead
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.skip(reason=NO_CHROMIUM))


def chromium() -> str | None:
    return next(filter(None, (shutil.which(name) for name in CHROMIUM_NAMES)), None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # Lets the page fixture know whether the test failed, to keep a screenshot.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _unavailable(reason: str) -> None:
    """CI promises the services (ATOM_TEST_REQUIRE_SERVICES=1): fail there, skip elsewhere."""
    if os.environ.get("ATOM_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def atom_cli(*args: str, env: dict[str, str]) -> str:
    """Run `atom ARGS` (the project's CLI) and return what it printed."""
    cmd = [sys.executable, "-m", "atom_core.interfaces.cli", *args]
    done = subprocess.run(cmd, cwd=REPO, env=env, timeout=120, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"atom {' '.join(args)} exited with {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _wait_until_up(proc: subprocess.Popen, base_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            pytest.fail(f"the app exited with {proc.returncode} while starting:\n{tail}")
        if _answers(f"{base_url}/health") and _answers(f"{base_url}/login"):
            return
        time.sleep(1)
    pytest.fail(f"the app did not answer within {STARTUP_TIMEOUT_S} s; see {log}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the whole process group: reflex starts workers that outlive a plain kill."""
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


@pytest.fixture(scope="session")
def atom_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app's ATOM_HOME, for tests that seed data through atom_core."""
    if os.environ.get("ATOM_E2E_BASE_URL"):
        if not os.environ.get("ATOM_HOME"):
            pytest.skip("set ATOM_HOME to the running app's home to seed data")
        return Path(os.environ["ATOM_HOME"])
    return tmp_path_factory.mktemp("atom_home")


@pytest.fixture(scope="session")
def atom(atom_home: Path) -> Callable[..., str]:
    """atom("tenant", "create", ...) runs the CLI on the app's data, to seed what the UI cannot create yet."""
    env = {**os.environ, "ATOM_HOME": str(atom_home)}
    return lambda *args: atom_cli(*args, env=env)


@pytest.fixture(scope="session")
def base_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if external := os.environ.get("ATOM_E2E_BASE_URL"):
        yield external.rstrip("/")
        return
    env = {
        **reflex_environment(),  # as `atom serve` runs it
        "ATOM_HOME": str(request.getfixturevalue("atom_home")),
        "ATOM_AUTH_RATE_LIMIT": "1000/minute",  # every test signs up from 127.0.0.1
    }
    atom_cli("db", "upgrade", env=env)
    port = _free_port()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "server.log"
    cmd = reflex_command("127.0.0.1", port)  # loopback: the test app is not exposed
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(proc, url, log)
        yield url
    finally:
        _stop(proc)


# Module scope, not session: Playwright's sync API keeps its event loop marked
# as running in this thread while it lives, which breaks every later test that
# starts a loop of its own (asyncio.run in the CLI, pytest-asyncio fixtures).
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = chromium()
    if executable is None:
        _unavailable(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def viewport() -> dict[str, int]:
    return DESKTOP


@pytest.fixture
def page(browser, base_url: str, viewport: dict[str, int], request: pytest.FixtureRequest):
    # browser before base_url: a missing Chromium skips before the app is built.
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"{_safe(request.node.name)}-FAILED.png", full_page=True)
    context.close()


@pytest.fixture
def snap(page, request: pytest.FixtureRequest) -> Callable[[str], None]:
    """snap("login") saves artifacts/<test>-<n>-login.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    count = 0

    def save(name: str) -> None:
        nonlocal count
        count += 1
        page.screenshot(path=ARTIFACTS / f"{_safe(request.node.name)}-{count:02d}-{name}.png", full_page=True)

    return save


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
