"""`atom serve`: loopback unless told otherwise, a warning when a wider bind exposes the demo
account's default password, one URL on the console, and npm's own registry setting.

Reflex is replaced by a stand-in module (first on PYTHONPATH) that records how it was
started and prints what the real one prints, so no frontend is built here.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from atom_core.seed import DEMO_EMAIL
from tests.test_cli import atom, fresh_home, ok  # noqa: F401 - fresh_home: a fixture

PORT = 3917
# What Reflex 0.10 prints on `reflex run --env prod --single-port` (a first run).
REFLEX_CONSOLE = """\
───────────────────────────── Initializing atom_ui ─────────────────────────────
Info: Initializing the web directory.
Success: Initialized atom_ui. Run `uv run reflex run` to start the app.
Compiling: ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 100% 37/36 0:00:01
───────────────────────────────── App Running ──────────────────────────────────
App running at: http://0.0.0.0:3917/
Backend running at: http://0.0.0.0:3917
"""
STAND_IN = f"""\
import json, os, sys
with open(os.environ["ATOM_TEST_REFLEX_RECORD"], "w") as fh:
    json.dump({{"argv": sys.argv[1:], "registry": os.environ.get("NPM_CONFIG_REGISTRY")}}, fh)
sys.stdout.write({REFLEX_CONSOLE!r})
"""
NPM_REGISTRY = "http://127.0.0.1:9/registry-from-npmrc/"  # never contacted: the stand-in builds nothing


@pytest.fixture
def reflex_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Puts the stand-in first on the path; returns where it records its start."""
    package = tmp_path / "stand-in" / "reflex"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(STAND_IN)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(package.parent), *sys.path]))
    monkeypatch.setenv("ATOM_TEST_REFLEX_RECORD", str(tmp_path / "reflex-start.json"))
    npmrc = tmp_path / "npmrc"
    npmrc.write_text(f"registry={NPM_REGISTRY}\n")
    monkeypatch.setenv("NPM_CONFIG_USERCONFIG", str(npmrc))  # the operator's own npm configuration
    monkeypatch.delenv("NPM_CONFIG_REGISTRY", raising=False)
    return tmp_path / "reflex-start.json"


def started(record: Path) -> dict:
    return json.loads(record.read_text())


def bind_host(record: Path) -> str:
    argv = started(record)["argv"]
    return argv[argv.index("--backend-host") + 1]


@pytest.mark.usefixtures("fresh_home")
def test_serve_binds_loopback_prints_one_url_and_uses_npm_s_registry(reflex_stand_in: Path) -> None:
    result = atom(f"serve --port {PORT}")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert bind_host(reflex_stand_in) == "127.0.0.1"
    urls = re.findall(r"https?://\S+", result.stdout + result.stderr)
    assert urls == [f"http://127.0.0.1:{PORT}"], result.stdout
    assert f"ATOM is running at http://127.0.0.1:{PORT}\n" in result.stdout
    assert "reflex run" not in result.stdout
    assert "Compiling:" in result.stdout  # Reflex's progress still shows
    assert result.stderr == ""
    assert started(reflex_stand_in)["registry"] == NPM_REGISTRY


def test_a_wider_bind_warns_while_the_demo_password_is_the_default(
    backend: str, reflex_stand_in: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok("seed --demo")
    monkeypatch.setenv("ATOM_HOST", "0.0.0.0")
    result = atom(f"serve --port {PORT}")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert bind_host(reflex_stand_in) == "0.0.0.0"
    assert result.stderr.startswith("warning: serving on 0.0.0.0") and result.stderr.count("\n") == 1
    assert "demo account" in result.stderr and "orbit" not in result.stderr  # the password is not repeated
    assert f"ATOM is running at http://0.0.0.0:{PORT}\n" in result.stdout

    loopback = atom(f"serve --host 127.0.0.1 --port {PORT}")
    assert loopback.exit_code == 0 and loopback.stderr == ""
    assert bind_host(reflex_stand_in) == "127.0.0.1"


def test_a_wider_bind_is_quiet_once_the_demo_password_is_not_the_default(backend: str, reflex_stand_in: Path) -> None:
    ok(f"tenant create Demo --owner-email {DEMO_EMAIL} --owner-password {{pw}}")
    assert "already there" in ok("seed --demo")  # the demo tenant, with its owner's own password
    result = atom(f"serve --host :: --port {PORT}")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stderr == ""
    assert bind_host(reflex_stand_in) == "::"
    assert f"ATOM is running at http://[::]:{PORT}\n" in result.stdout


@pytest.mark.usefixtures("fresh_home")
def test_a_wider_bind_before_any_database_is_quiet(reflex_stand_in: Path) -> None:
    result = atom(f"serve --host 0.0.0.0 --port {PORT}")
    assert result.exit_code == 0 and result.stderr == "", result.stderr


@pytest.mark.usefixtures("fresh_home")
@pytest.mark.parametrize("host", ["a b", "127.0.0.1;id", "http://x"])
def test_a_bad_host_exits_2_naming_it(reflex_stand_in: Path, host: str) -> None:
    result = atom(f"serve --host '{host}'")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and "--host" in result.stderr and result.stderr.count("\n") == 1
    assert not reflex_stand_in.exists()
