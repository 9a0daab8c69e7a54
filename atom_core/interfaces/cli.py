"""The `atom` command line.

Bad input prints one line to stderr and exits with code 2; nothing is written.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from atom_core.db import dispose_engine
from atom_core.db import migrate as migrations
from atom_core.errors import AtomError
from atom_core.infra.ratelimit import reset_rate_limiter
from atom_core.infra.redis import close_redis
from atom_core.plugins import load_plugins
from atom_core.settings import HOST_PATTERN, get_settings

T = TypeVar("T")

# Pretty tracebacks print local variables, which can hold secrets: off.
app = typer.Typer(
    help="ATOM: multi-tenant AI agent platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants.", no_args_is_help=True)
user_app = typer.Typer(help="Users and memberships.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys.", no_args_is_help=True)
config_app = typer.Typer(help="Settings.", no_args_is_help=True)
agent_app = typer.Typer(help="Agents.", no_args_is_help=True)
for sub, name in (
    (db_app, "db"),
    (tenant_app, "tenant"),
    (user_app, "user"),
    (apikey_app, "apikey"),
    (config_app, "config"),
    (agent_app, "agent"),
):
    app.add_typer(sub, name=name)


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Run one service call; domain errors become a one-line message and exit 2."""

    async def call() -> T:
        try:
            return await make()
        finally:  # connections belong to this command's event loop
            await dispose_engine()
            await close_redis()
            reset_rate_limiter()

    try:
        return asyncio.run(call())
    except AtomError as exc:
        field = f" ({exc.field})" if exc.field else ""
        raise fail(f"{exc.message}{field}") from None
    except SQLAlchemyError as exc:
        # Not bad input: exit 1, still one line (SQL and parameters stay out of the terminal).
        name = type(exc).__name__
        typer.echo(f"error: database failed ({name}); is it reachable and at 'atom db upgrade'?", err=True)
        raise typer.Exit(1) from None


# --- db ----------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Option(help="Target revision.")] = "head") -> None:
    """Apply migrations (as ATOM_DATABASE_ADMIN_URL's role when set)."""
    migrations.upgrade(revision)
    typer.echo(f"database at {revision}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Option(help="Target revision ('base' removes every table).")] = "-1",
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this deletes data.")] = False,
) -> None:
    """Revert migrations."""
    if not yes:
        raise fail("downgrading deletes data; pass --yes to confirm")
    migrations.downgrade(revision)
    typer.echo(f"database at {revision}")


# --- tenants, users, keys ----------------------------------------------------


@tenant_app.command("create")
def tenant_create(
    name: str,
    owner_email: Annotated[
        str, typer.Option("--owner-email", help="Owner's email (an existing account, or a new one).")
    ],
    owner_password: Annotated[
        str | None, typer.Option("--owner-password", envvar="ATOM_OWNER_PASSWORD", help="Password for a new owner.")
    ] = None,
) -> None:
    """Create a tenant with its owner."""
    from atom_core.tenancy import service as tenancy

    tenant, user = run(lambda: tenancy.create_tenant(name, owner_email, owner_password=owner_password))
    typer.echo(json.dumps({"tenant_id": str(tenant.id), "slug": tenant.slug, "owner_id": str(user.id)}))


@user_app.command("add")
def user_add(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id or slug.")],
    email: Annotated[str, typer.Option("--email")],
    role: Annotated[str, typer.Option("--role", help="owner, admin, member or viewer.")] = "member",
    password: Annotated[
        str | None, typer.Option("--password", envvar="ATOM_USER_PASSWORD", help="Creates the account if it is new.")
    ] = None,
) -> None:
    """Add a user to a tenant (creating the account when a password is given)."""
    from atom_core.tenancy import service as tenancy

    member = run(lambda: tenancy.add_user(tenant, email, role, password))
    typer.echo(json.dumps({"user_id": str(member.user_id), "email": member.email, "role": member.role}))


@apikey_app.command("create")
def apikey_create(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id or slug.")],
    role: Annotated[str, typer.Option("--role")] = "member",
    name: Annotated[str, typer.Option("--name")] = "cli",
) -> None:
    """Create an API key; the key is printed once."""
    from atom_core.tenancy import apikeys
    from atom_core.tenancy import service as tenancy

    async def create() -> apikeys.NewApiKey:
        found = await tenancy.resolve_tenant(tenant)
        return await apikeys.create(tenancy.operator_ctx(found.id), name, role)

    created = run(create)
    typer.echo(json.dumps({"id": str(created.info.id), "prefix": created.info.prefix, "key": created.key}))


@app.command("seed")
def seed(demo: Annotated[bool, typer.Option("--demo", help="The demo tenant and its owner.")] = False) -> None:
    """Seed data (idempotent)."""
    if not demo:
        raise fail("say what to seed: --demo")
    from atom_core.seed import seed_demo

    result = run(seed_demo)
    state = "created" if result.created else "already there"
    typer.echo(f"demo tenant '{result.tenant_slug}' {state}: sign in as {result.email} / {result.password}")


# --- agents ------------------------------------------------------------------

TenantOption = Annotated[str, typer.Option("--tenant", envvar="ATOM_TENANT", help="Tenant id or slug.")]


async def _operator(tenant: str):
    from atom_core.tenancy import service as tenancy

    return tenancy.operator_ctx((await tenancy.resolve_tenant(tenant)).id)


def _agent_line(agent) -> str:
    return f"{agent.slug:<24} {agent.model:<28} tools={','.join(agent.tools) or '-'}  {agent.name}"


@agent_app.command("list")
def agent_list(tenant: TenantOption) -> None:
    """The tenant's agents."""
    from atom_core.agents import service as agents

    async def load():
        return (await agents.list_agents(await _operator(tenant), limit=200)).items

    for agent in run(load):
        typer.echo(_agent_line(agent))


@agent_app.command("create")
def agent_create(
    tenant: TenantOption,
    slug: str,
    name: Annotated[str, typer.Option("--name")],
    model: Annotated[str, typer.Option("--model")] = "atom/offline",
    fallback: Annotated[
        list[str] | None, typer.Option("--fallback", help="A model to try if --model fails; repeat, in order.")
    ] = None,
    system_prompt: Annotated[str, typer.Option("--system-prompt")] = "",
    tools: Annotated[str, typer.Option("--tools", help="Comma-separated tool names.")] = "",
) -> None:
    """Create an agent."""
    from atom_core.agents import service as agents

    data = agents.AgentInput(
        slug=slug,
        name=name,
        model=model,
        fallbacks=fallback or [],
        system_prompt=system_prompt,
        tools=[t for t in tools.split(",") if t],
    )

    async def create():
        return await agents.create_agent(await _operator(tenant), data)

    typer.echo(json.dumps({"id": str(run(create).id), "slug": slug}))


@agent_app.command("show")
def agent_show(tenant: TenantOption, slug: str) -> None:
    """One agent, as JSON."""
    from atom_core.agents import service as agents

    async def load():
        return await agents.get_agent_by_slug(await _operator(tenant), slug)

    typer.echo(json.dumps(run(load).model_dump(mode="json"), indent=2))


@agent_app.command("delete")
def agent_delete(tenant: TenantOption, slug: str) -> None:
    """Delete an agent."""
    from atom_core.agents import service as agents

    async def delete() -> None:
        ctx = await _operator(tenant)
        await agents.delete_agent(ctx, (await agents.get_agent_by_slug(ctx, slug)).id)

    run(delete)
    typer.echo(f"deleted {slug}")


@agent_app.command("run")
def agent_run(
    tenant: TenantOption,
    slug: str,
    text: str,
    stream: Annotated[bool, typer.Option("--stream", help="Print tokens as they arrive.")] = False,
    session: Annotated[str | None, typer.Option("--session", help="Continue a conversation.")] = None,
) -> None:
    """Run an agent and print its answer, then tokens, cost and latency."""
    from atom_core.agents import runtime
    from atom_core.agents import service as agents

    async def on_event(event: dict) -> None:
        if event["type"] == "token":
            typer.echo(event["text"], nl=False)
        elif event["type"] == "tool.started":
            typer.echo(f"\n[tool {event['name']} {event['arguments']}]", err=True)

    async def execute():
        ctx = await _operator(tenant)
        agent = await agents.get_agent_by_slug(ctx, slug)
        return await runtime.run_agent(ctx, agent.id, text, session_id=session, on_event=on_event if stream else None)

    result = run(execute).run
    if stream:
        typer.echo()
    elif result.output:
        typer.echo(result.output)
    if result.status != "succeeded":
        typer.echo(f"error: run {result.status}: {result.error}", err=True)
    typer.echo(
        f"-- {result.status} · {result.prompt_tokens}+{result.completion_tokens} tokens · "
        f"${result.cost_micros / 1_000_000:.6f} · {result.latency_ms} ms · model {result.model} · "
        f"session {result.session_id} · run {result.id}",
        err=True,
    )
    if result.status != "succeeded":
        raise typer.Exit(1)


# --- config and servers ------------------------------------------------------


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings, secrets masked."""
    shown = get_settings().masked()
    typer.echo(json.dumps(shown, indent=2, default=str))


HostOption = Annotated[
    str | None, typer.Option(help="Interface to bind. Default: ATOM_HOST (127.0.0.1, this machine only).")
]


def _bind_host(host: str | None) -> str:
    """The interface to serve on; warns when that exposes the demo account's default password."""
    from atom_core.interfaces.serve import exposure_warning, is_loopback
    from atom_core.seed import demo_password_unchanged

    async def demo_exposed() -> bool:
        try:
            return await demo_password_unchanged()
        except SQLAlchemyError:  # no database yet: no demo account either
            return False

    host = host or get_settings().host
    if not HOST_PATTERN.fullmatch(host):
        raise fail(f"not an interface address: {host!r} (--host)")
    if not is_loopback(host) and run(demo_exposed):
        typer.echo(exposure_warning(host), err=True)
    return host


@app.command("api")
def api(
    host: HostOption = None,
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
) -> None:
    """Serve the REST API alone (no dashboard build)."""
    import uvicorn

    from atom_core.interfaces.api.app import create_api

    host = _bind_host(host)
    uvicorn.run(create_api(), host=host, port=port, log_level=get_settings().log_level.lower(), proxy_headers=False)


@app.command("serve")
def serve(
    host: HostOption = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Default: ATOM_PORT (3000).")] = None,
) -> None:
    """Build and serve the dashboard and the API on one port (production mode)."""
    from atom_core.interfaces.serve import run_reflex

    host = _bind_host(host)
    raise typer.Exit(run_reflex(host, port or get_settings().port))


def _register_workflows() -> None:
    from atom_core.interfaces import cli_workflows  # it imports helpers from this module

    cli_workflows.register(app)


_register_workflows()


def _is_usage_error(exc: BaseException) -> bool:
    # Typer vendors click, so its UsageError has no public name to catch by.
    return any(cls.__name__ == "UsageError" for cls in type(exc).__mro__)


def main() -> None:
    try:
        get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "ATOM_" + str(first["loc"][0]).upper() if first["loc"] else "settings"
        typer.echo(f"error: {name}: {first['msg']}", err=True)
        raise SystemExit(2) from None
    try:
        load_plugins()
    except AtomError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise SystemExit(2) from None
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        raise SystemExit(1) from None
    except Exception as exc:
        if not _is_usage_error(exc):
            raise
        typer.echo(f"error: {exc.format_message()}", err=True)  # type: ignore[attr-defined]
        raise SystemExit(2) from None
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
