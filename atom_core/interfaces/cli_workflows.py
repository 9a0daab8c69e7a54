"""`atom workflow …`, `atom run …` and `atom worker`.

In embedded mode this process is the executor: commands that start or
unblock steps stay until the run finishes or waits for a decision (with
`--follow` they print each step as it goes). In distributed mode the
workers run the steps and these commands only watch.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from atom_core.settings import get_settings

TenantOption = Annotated[str, typer.Option("--tenant", envvar="ATOM_TENANT", help="Tenant id or slug.")]
workflow_app = typer.Typer(help="Workflows (versioned specs).", no_args_is_help=True)
run_app = typer.Typer(help="Workflow runs.", no_args_is_help=True)
InputOption = Annotated[list[str] | None, typer.Option("--input", "-i", help="An input as key=value; repeat.")]
FollowOption = Annotated[bool, typer.Option("--follow", "-f", help="Print each step's progress live.")]
SETTLED = frozenset({"succeeded", "failed", "cancelled", "waiting"})


# The shared helpers live in `cli`, which imports this module to register it:
# they are looked up when a command runs, not at import (that would be circular).
def fail(message: str) -> typer.Exit:
    from atom_core.interfaces import cli

    return cli.fail(message)


def run(make):
    from atom_core.interfaces import cli

    return cli.run(make)


async def _operator(tenant: str):
    from atom_core.interfaces import cli

    return await cli._operator(tenant)


def register(app: typer.Typer) -> None:
    app.add_typer(workflow_app, name="workflow")
    app.add_typer(run_app, name="run")
    app.command("worker")(worker)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror}") from None


def _inputs(pairs: list[str] | None) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise fail(f"--input must look like key=value, got {pair!r}")
        values[key.strip()] = value
    return values


def _run_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise fail(f"not a run id: {text!r}") from None


# --- workflows ---------------------------------------------------------------------


@workflow_app.command("validate")
def workflow_validate(
    file: Path, tenant: Annotated[str | None, typer.Option("--tenant", envvar="ATOM_TENANT")] = None
) -> None:
    """Check a spec. With --tenant, its agent slugs are checked against that tenant's agents too."""
    from atom_core.agents.tools.builtins import TOOLS
    from atom_core.workflows import service as workflows
    from atom_core.workflows import spec as specs

    source = _read(file)

    async def check():
        if tenant:
            return await workflows.check_spec(await _operator(tenant), source)
        raw = specs.parse(source)
        agents = {s.get("agent") for s in raw.get("steps", []) if isinstance(s, dict)} - {None}
        return specs.validate(raw, agents=agents, tools=TOOLS.names())

    spec = run(check)
    note = "" if tenant else " (agents not checked: pass --tenant)"
    typer.echo(f"ok: {spec.name}, {len(spec.steps)} steps{note}")


@workflow_app.command("create")
def workflow_create(
    tenant: TenantOption, file: Path, name: Annotated[str | None, typer.Option("--name")] = None
) -> None:
    """Save a spec as a new workflow (version 1)."""
    from atom_core.workflows import service as workflows

    source = _read(file)

    async def create():
        return await workflows.create_workflow(await _operator(tenant), source, name)

    view = run(create)
    typer.echo(json.dumps({"id": str(view.workflow.id), "name": view.workflow.name, "version": 1}))


@workflow_app.command("update")
def workflow_update(tenant: TenantOption, workflow: str, file: Path) -> None:
    """Save a new version of a workflow (by id or name)."""
    from atom_core.workflows import service as workflows

    source = _read(file)

    async def update():
        ctx = await _operator(tenant)
        return await workflows.update_workflow(ctx, await _workflow_id(ctx, workflow), source)

    view = run(update)
    typer.echo(json.dumps({"id": str(view.workflow.id), "version": view.version.version}))


@workflow_app.command("list")
def workflow_list(tenant: TenantOption) -> None:
    """The tenant's workflows."""
    from atom_core.workflows import service as workflows

    async def load():
        return (await workflows.list_workflows(await _operator(tenant), limit=200)).items

    for w in run(load):
        typer.echo(f"{w.id}  v{w.latest_version:<3} {w.name}")


@workflow_app.command("run")
def workflow_run(
    tenant: TenantOption,
    workflow: Annotated[
        str, typer.Argument(help="A spec file (saved first, as a new version if it exists), an id or a name.")
    ],
    inputs: InputOption = None,
    follow: FollowOption = False,
) -> None:
    """Start a run; in embedded mode, stay until it finishes or waits for approval."""
    from atom_core.workflows import service as workflows

    values = _inputs(inputs)
    path = Path(workflow)
    source = _read(path) if path.suffix in (".yaml", ".yml", ".json") or path.is_file() else None

    async def start():
        ctx = await _operator(tenant)
        workflow_id = await _save(ctx, source) if source is not None else await _workflow_id(ctx, workflow)
        started = await workflows.start_run(ctx, workflow_id, values)
        typer.echo(f"run {started.id} started", err=True)
        return await _watch(ctx, started.id, follow)

    _report(run(start), tenant)


async def _save(ctx, source: str) -> uuid.UUID:
    from atom_core.errors import Conflict
    from atom_core.workflows import service as workflows

    try:
        return (await workflows.create_workflow(ctx, source)).workflow.id
    except Conflict:
        spec = await workflows.check_spec(ctx, source)
        existing = await workflows.find_workflow(ctx, spec.name)
        return (await workflows.update_workflow(ctx, existing.id, source)).workflow.id


async def _workflow_id(ctx, text: str) -> uuid.UUID:
    from atom_core.workflows import service as workflows

    try:
        return uuid.UUID(text)
    except ValueError:
        return (await workflows.find_workflow(ctx, text)).id


# --- runs ------------------------------------------------------------------------------


@run_app.command("show")
def run_show(tenant: TenantOption, run_id: str) -> None:
    """A run and its steps, as JSON."""
    from atom_core.interfaces.api.routers.workflows import run_detail
    from atom_core.workflows import service as workflows

    async def load():
        return await workflows.get_run(await _operator(tenant), _run_id(run_id))

    typer.echo(run_detail(run(load)).model_dump_json(indent=2))


@run_app.command("list")
def run_list(tenant: TenantOption, status: Annotated[str | None, typer.Option("--status")] = None) -> None:
    """Recent runs, newest first."""
    from atom_core.workflows import service as workflows

    async def load():
        return (await workflows.list_runs(await _operator(tenant), status=status, limit=100)).items

    for r in run(load):
        typer.echo(f"{r.id}  {r.status:<10} ${r.cost_micros / 1e6:.6f}  {r.created_at:%Y-%m-%d %H:%M:%S}")


def _decision(approved: bool):
    def command(
        tenant: TenantOption,
        run_id: str,
        step: str,
        comment: Annotated[str | None, typer.Option("--comment")] = None,
        follow: FollowOption = False,
    ) -> None:
        from atom_core.workflows import service as workflows

        async def decide():
            ctx = await _operator(tenant)
            view = await workflows.decide(ctx, _run_id(run_id), step, approved, comment)
            return await _watch(ctx, view.run.id, follow)

        _report(run(decide), tenant)

    command.__doc__ = (
        "Approve a waiting step; the run goes on." if approved else "Reject a waiting step; the run fails."
    )
    return command


run_app.command("approve")(_decision(True))
run_app.command("reject")(_decision(False))


@run_app.command("cancel")
def run_cancel(tenant: TenantOption, run_id: str) -> None:
    """Cancel a run: nothing new starts; running steps stop at their next heartbeat."""
    from atom_core.workflows import service as workflows

    async def cancel():
        return await workflows.cancel_run(await _operator(tenant), _run_id(run_id))

    typer.echo(f"run {run(cancel).id} cancelled")


@run_app.command("resume")
def run_resume(tenant: TenantOption, run_id: str, follow: FollowOption = False) -> None:
    """Go on with a failed, cancelled or stalled run; finished steps are kept."""
    from atom_core.workflows import service as workflows

    async def resume():
        ctx = await _operator(tenant)
        view = await workflows.resume_run(ctx, _run_id(run_id))
        return await _watch(ctx, view.run.id, follow)

    _report(run(resume), tenant)


@run_app.command("rerun")
def run_rerun(
    tenant: TenantOption,
    run_id: str,
    from_step: Annotated[str, typer.Option("--from", help="The first step to run again.")],
    follow: FollowOption = False,
) -> None:
    """A new run reusing every finished step that is not --from or after it."""
    from atom_core.workflows import service as workflows

    async def rerun():
        ctx = await _operator(tenant)
        new = await workflows.rerun(ctx, _run_id(run_id), from_step)
        typer.echo(f"run {new.id} started (reused steps saved ${new.saved_micros / 1e6:.6f})", err=True)
        return await _watch(ctx, new.id, follow)

    _report(run(rerun), tenant)


# --- watching ------------------------------------------------------------------------


async def _watch(ctx, run_id: uuid.UUID, follow: bool):
    """Wait until the run settles (and this process's steps are done), printing events if asked."""
    from atom_core.workflows import executors
    from atom_core.workflows import service as workflows

    embedded = get_settings().executor == "embedded"
    seen = 0
    while True:
        for event in await workflows.events_after(ctx, run_id, seen):
            seen = event.seq
            if follow:
                typer.echo(_event_line(event.type, event.data, event.created_at))
        view = await workflows.get_run(ctx, run_id)
        local_idle = not embedded or executors.embedded().busy == 0
        if view.run.status in SETTLED and local_idle:
            return view
        await asyncio.sleep(0.2)


def _event_line(kind: str, data: dict[str, Any], at) -> str:
    step = data.get("step_id", "")
    detail = ""
    if "attempt" in data and kind == "step.started":
        detail = f"attempt {data['attempt']}"
    elif data.get("error"):
        detail = str(data["error"])[:200]
    elif kind == "step.finished":
        detail = _short(data.get("output"))
    elif kind == "step.retrying":
        detail = f"retry in {data.get('delay_s', 0):g} s"
    return f"{at:%H:%M:%S}  {kind:<16} {step:<20} {detail}".rstrip()


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= 100 else text[:99] + "…"


def _report(view, tenant: str) -> None:
    run_ = view.run
    typer.echo(f"-- run {run_.id} {run_.status} · ${run_.cost_micros / 1e6:.6f}")
    waiting = [s.step_id for s in view.steps if s.status == "waiting"]
    if waiting:  # a command to copy as it is
        approve = f"atom run approve --tenant {shlex.quote(tenant)} {run_.id} {shlex.quote(waiting[0])}"
        typer.echo(f"waiting for a decision: {approve}  (or reject)", err=True)
    if run_.status == "succeeded" and run_.output is not None:
        typer.echo(_short(run_.output) if not isinstance(run_.output, str) else run_.output)
    if run_.status in ("failed", "cancelled"):
        typer.echo(f"error: {run_.error}", err=True)
        raise typer.Exit(1)


# --- worker --------------------------------------------------------------------------


def worker(
    processes: Annotated[int, typer.Option("--processes", "-p", min=1, max=256)] = 2,
    threads: Annotated[int, typer.Option("--threads", "-t", min=1, max=256)] = 32,
    status: Annotated[bool, typer.Option("--status", help="Print the queue's depth and dead letters.")] = False,
) -> None:
    """Run workflow steps: Dramatiq workers in distributed mode; in embedded mode, a
    process that resumes interrupted runs."""
    settings = get_settings()
    if settings.executor == "distributed" and not settings.queue_url:
        raise fail("ATOM_EXECUTOR=distributed needs ATOM_REDIS_URL")
    if status:
        if settings.executor != "distributed":
            raise fail("the embedded executor has no queue (ATOM_EXECUTOR=distributed has one)")
        from atom_core.workflows import queue

        depth = queue.queue_depth()
        typer.echo(" · ".join(f"{name} {count}" for name, count in depth.items()))
        return
    if settings.executor == "distributed":
        command = [sys.executable, "-m", "dramatiq", "atom_core.workflows.queue"]
        command += ["--processes", str(processes), "--threads", str(threads), "--queues", "workflow-steps"]
        typer.echo(f"starting {processes} worker process(es) x {threads} threads", err=True)
        os.execvp(command[0], command)  # noqa: S606 - fixed argv, no shell
    from atom_core.workflows import executors

    typer.echo("embedded executor: resuming interrupted runs (Ctrl-C to stop)", err=True)
    run(executors.sweep_forever)
