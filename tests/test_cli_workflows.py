"""`atom workflow …` and `atom run …` in embedded mode: the CLI process runs the
steps, follows them live, and stops at an approval until `atom run approve`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from atom_core.interfaces.cli import app
from tests.test_cli import assert_one_line_error, atom, ok, runner

DEMOS = Path(__file__).parent.parent / "atom_core" / "workflows" / "demos"


def demo_tenant() -> str:
    ok("seed --demo")
    return "demo"


def run_id_of(stderr: str) -> str:
    match = re.search(r"run ([0-9a-f-]{36})", stderr)
    assert match, stderr
    return match.group(1)


def test_validate_a_good_spec_and_reject_a_bad_one_naming_the_field(backend: str, tmp_path: Path) -> None:
    assert "ok: research-brief, 4 steps" in ok(f"workflow validate {DEMOS / 'research-brief.yaml'}")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nsteps:\n  - id: a\n    type: tool\n    tool: calculator\n"
        "    args: {expression: '1'}\n    depends_on: [zz]\n"
    )
    assert_one_line_error(atom(f"workflow validate {bad}"), "spec.steps[0].depends_on")
    assert_one_line_error(atom(f"workflow validate {tmp_path / 'missing.yaml'}"), "cannot read")


def test_the_seeded_research_brief_waits_for_approval_then_finishes(backend: str) -> None:
    tenant = demo_tenant()
    listed = ok(f"workflow list --tenant {tenant}")
    assert {"research-brief", "ticket-fanout", "escalation-branch"} <= set(re.findall(r"v1\s+(\S+)", listed))

    started = atom(f"workflow run --tenant {tenant} research-brief --input topic=solar --follow")
    assert started.exit_code == 0, started.stderr
    assert "step.started" in started.stdout and "research" in started.stdout
    hint = re.search(r"waiting for a decision: atom (run approve .+?)  \(or reject\)", started.stderr)
    assert hint, started.stderr
    run_id = run_id_of(started.stderr)

    approved = atom(f"{hint.group(1)} --comment ok --follow")  # the hint, as printed, works
    assert approved.exit_code == 0, approved.stderr
    assert f"-- run {run_id} succeeded" in approved.stdout
    assert "[offline model]" in approved.stdout  # the written brief, from the offline model
    shown = json.loads(ok(f"run show --tenant {tenant} {run_id}"))
    assert [s["status"] for s in shown["steps"]] == ["succeeded"] * 4
    assert shown["steps"][2]["decision"]["comment"] == "ok"
    assert_one_line_error(atom(f"run cancel --tenant {tenant} {run_id}"), "already succeeded")


def test_the_seeded_map_and_branch_workflows_run_offline(backend: str) -> None:
    tenant = demo_tenant()
    fanout = atom(f"workflow run --tenant {tenant} ticket-fanout -i 'tickets=login broken, refund please, slow page'")
    assert fanout.exit_code == 0, fanout.stderr
    assert "3 tickets triaged" in fanout.stdout

    major = atom(f"workflow run --tenant {tenant} escalation-branch -i customers=120 -i minutes=30 --follow")
    assert major.exit_code == 0, major.stderr
    assert "step.skipped" in major.stdout and "note" in major.stdout
    assert "Major incident: 3600" in major.stdout
    minor = atom(f"workflow run --tenant {tenant} escalation-branch -i customers=2 -i minutes=3")
    assert minor.exit_code == 0 and "Minor incident: 6" in minor.stdout


def test_run_a_spec_file_then_rerun_and_bad_input(backend: str, tmp_path: Path) -> None:
    tenant = demo_tenant()
    spec = tmp_path / "sum.yaml"
    spec.write_text(
        "name: sum\ninputs: {n: integer}\nsteps:\n"
        "  - id: double\n    type: tool\n    tool: calculator\n    args: {expression: '{{ inputs.n }} * 2'}\n"
        "  - id: plus\n    type: tool\n    tool: calculator\n    depends_on: [double]\n"
        "    args: {expression: '{{ steps.double.output.result }} + 1'}\n"
        "output: '{{ steps.plus.output.result }}'\n"
    )
    first = atom(f"workflow run --tenant {tenant} {spec} -i n=20")
    assert first.exit_code == 0, first.stderr
    assert first.stdout.strip().endswith("41")
    rerun = atom(f"run rerun --tenant {tenant} {run_id_of(first.stderr)} --from plus")
    assert rerun.exit_code == 0 and "saved $0.000000" in rerun.stderr and rerun.stdout.strip().endswith("41")

    assert_one_line_error(atom(f"workflow run --tenant {tenant} sum -i n=abc"), "input.n")
    assert_one_line_error(atom(f"workflow run --tenant {tenant} sum -i nope"), "key=value")
    assert_one_line_error(atom(f"workflow run --tenant {tenant} no-such-flow"), "no workflow")
    assert_one_line_error(atom(f"run show --tenant {tenant} not-a-uuid"), "not a run id")


def test_values_that_cannot_be_stored_exit_2_naming_the_field(backend: str, tmp_path: Path) -> None:
    """The CLI goes through the same validation layer as the API: NUL, lone
    surrogates, huge numbers, NaN and deep nesting are refused before anything is stored."""
    tenant = demo_tenant()
    spec = tmp_path / "typed.yaml"
    spec.write_text(
        "name: typed\ninputs: {n: integer, tags: list}\nsteps:\n"
        "  - id: only\n    type: tool\n    tool: calculator\n    args: {expression: '1'}\n"
    )
    ok(f"workflow create --tenant {tenant} {spec}")
    for values, field in [
        (["n=99999999999999999", "tags=[]"], "input.n"),
        (["n=1", "tags=[NaN]"], "input.tags[0]"),
        (["n=1", "tags=" + "[" * 5000 + "]" * 5000], "input.tags"),
        (["n=1", 'tags=["a\\u0000b"]'], "input.tags[0]"),
        (["n=1", 'tags=["\\ud800"]'], "input.tags[0]"),
    ]:
        argv = ["workflow", "run", "--tenant", tenant, "typed"] + [f"-i{pair}" for pair in values]
        assert_one_line_error(runner.invoke(app, argv), field)
    assert "typed" not in ok(f"run list --tenant {tenant}")

    for text, field in [
        ('name: bad\ndescription: "a\\0b"\nsteps: [{id: a, type: approval}]\n', "spec.description"),
        ("name: bad\nsteps: [{id: a, type: approval}]\nx: " + "[" * 5000 + "]" * 5000, "spec"),
        ("name: bad\nsteps: [{id: a, type: approval, args: {x: .inf}}]\n", "spec.steps[0].args.x"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        assert_one_line_error(atom(f"workflow validate {bad}"), field)
        assert_one_line_error(atom(f"workflow create --tenant {tenant} {bad}"), field)

    for option, field in [("--system-prompt=be\x00nice", "system_prompt"), ("--name=A\ud800", "name")]:
        result = runner.invoke(app, ["agent", "create", "--tenant", tenant, "fresh", "--name=Fresh", option])
        assert_one_line_error(result, field)
    assert "fresh" not in ok(f"agent list --tenant {tenant}")
    agent = runner.invoke(app, ["agent", "run", "--tenant", tenant, "data-analyst", "what is\x00 1+1"])
    assert_one_line_error(agent, "input")
