"""Per-tenant model provider credentials: set, list, delete, test, and the gateway's lookup.

A provider is a LiteLLM provider prefix (`openai`, `anthropic`, `ollama`, …).
Its API key is encrypted at rest (`atom_core.llm.crypto`) and is write-only:
no function here returns it except `credentials_for`, which hands it to the
gateway for one call. Responses, audit entries and error messages carry at
most the hint (the last four characters of a long key).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from atom_core.context import Ctx
from atom_core.db import session_scope, utcnow
from atom_core.errors import Conflict, Invalid, NotFound
from atom_core.governance import audit
from atom_core.infra import egress
from atom_core.llm import OFFLINE_PROVIDER, config_cache, crypto, engine, failures
from atom_core.llm.models import ProviderCredential
from atom_core.settings import get_settings
from atom_core.tenancy import permissions

LOCAL_PROVIDER = OFFLINE_PROVIDER  # ATOM's own offline model: nothing to configure
# Model servers that need no key: a tenant may use them without storing one (where they are reachable).
LOCAL_SERVER_PROVIDERS = frozenset({"ollama", "ollama_chat", "lm_studio", "hosted_vllm", "vllm", "llamafile"})
API_KEY_MAX = 4096
API_BASE_MAX = 2048
# Sent when a tenant stored no key: litellm would otherwise use the server's own (OPENAI_API_KEY, …).
NO_KEY = "no-key-configured"
HINT_MIN_KEY_LENGTH = 12  # shorter keys get no hint: four characters would be too much of them
TEST_TIMEOUT_S = 15.0
TEST_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-latest", "ollama": "llama3.1"}
MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CONTROL_OR_SPACE = re.compile(r"[\s\x00-\x1f\x7f]")


class _Unchanged(Enum):
    UNCHANGED = "unchanged"


UNCHANGED: Final = _Unchanged.UNCHANGED
"""Default of `set_provider`'s fields: keep what is stored (None means remove it)."""


@dataclass(frozen=True)
class ProviderInfo:
    provider: str
    api_key_set: bool
    api_key_hint: str | None
    api_base: str | None
    updated_at: datetime

    @classmethod
    def of(cls, row: ProviderCredential) -> ProviderInfo:
        return cls(row.provider, row.api_key_encrypted is not None, row.api_key_hint, row.api_base, row.updated_at)


@dataclass(frozen=True)
class Credentials:
    """What the gateway passes to litellm for one call; None means litellm's default."""

    api_key: str | None = field(default=None, repr=False)  # never in a repr, a log line or a trace
    api_base: str | None = None

    def litellm_key(self) -> str | None:
        """The key to hand litellm: the tenant's, else a placeholder so that litellm never
        reads the operator's environment keys (unless ATOM_ALLOW_ENV_PROVIDER_KEYS).
        Credentials that are not API keys (AWS, Vertex service accounts) are outside its reach."""
        if self.api_key or get_settings().allow_env_provider_keys:
            return self.api_key
        return NO_KEY


@dataclass(frozen=True)
class ProviderTest:
    ok: bool
    latency_ms: int
    error: str | None = None


# --- validation ---------------------------------------------------------------------------

_known: frozenset[str] | None = None


async def known_providers() -> frozenset[str]:
    """LiteLLM's provider prefixes (litellm is imported off the event loop, once)."""
    global _known
    if _known is None:
        module = await engine.load()
        _known = frozenset(str(getattr(p, "value", p)) for p in module.provider_list) - {LOCAL_PROVIDER}
    return _known


async def check_provider(provider: str) -> str:
    if not isinstance(provider, str) or not provider:
        raise Invalid("provider is required (a LiteLLM provider prefix such as openai)", field="provider")
    if provider == LOCAL_PROVIDER:
        raise Invalid("'atom' is ATOM's built-in offline model: it has no credentials to set or test", field="provider")
    if provider not in await known_providers():
        shown = f"'{provider}' is not one" if _NAME_RE.match(provider) else "this is not one"
        raise Invalid(
            f"provider must be a LiteLLM provider prefix such as openai, anthropic, gemini or ollama; {shown}",
            field="provider",
        )
    if reason := ambient_refusal(provider):
        raise Invalid(reason, field="provider")
    return provider


# Providers that sign in with the server's own cloud identity (AWS keys and roles, Google
# application credentials, an OCI config) rather than an API key. ATOM stores an API key per
# workspace, never such an identity: a workspace would be spending the operator's account,
# and with a base URL of its choosing could be handed a token for it.
AMBIENT_PROVIDERS = frozenset(
    {"bedrock", "bedrock_mantle", "sagemaker", "sagemaker_chat", "sagemaker_nova", "vertex_ai", "vertex_ai_beta", "oci"}
)


def ambient_refusal(provider: str | None) -> str | None:
    """Why a workspace may not use this provider (see AMBIENT_PROVIDERS), or None."""
    if provider in AMBIENT_PROVIDERS and not get_settings().allow_env_provider_keys:
        return (
            f"provider '{provider}' signs in with the server's own cloud credentials, which workspaces may not "
            "use (the operator can allow it with ATOM_ALLOW_ENV_PROVIDER_KEYS)"
        )
    return None


def check_api_key(api_key: str) -> str:
    if not isinstance(api_key, str):
        raise Invalid("api_key must be text", field="api_key")
    api_key = api_key.strip()  # a pasted key often brings a newline along
    if not api_key:
        raise Invalid("api_key must not be empty; send null to remove the key", field="api_key")
    if len(api_key) > API_KEY_MAX:
        raise Invalid(f"api_key must be at most {API_KEY_MAX} characters", field="api_key")
    if _CONTROL_OR_SPACE.search(api_key):
        raise Invalid("api_key must not contain spaces or control characters", field="api_key")
    return api_key


def check_api_base(api_base: str | None) -> str | None:
    """An http(s) URL with a host and nothing secret in it; '' or None removes it."""
    if api_base is None:
        return None
    if not isinstance(api_base, str):
        raise Invalid("api_base must be a URL", field="api_base")
    api_base = api_base.strip()
    if not api_base:
        return None
    if len(api_base) > API_BASE_MAX:
        raise Invalid(f"api_base must be at most {API_BASE_MAX} characters", field="api_base")
    if _CONTROL_OR_SPACE.search(api_base):
        raise Invalid("api_base must not contain spaces or control characters", field="api_base")
    try:
        parts = urlsplit(api_base)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        raise Invalid("api_base is not a valid URL", field="api_base") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("api_base must be an http:// or https:// URL with a host", field="api_base")
    if parts.username is not None or parts.password is not None:
        raise Invalid("api_base must not contain a user name or password: set api_key instead", field="api_base")
    if parts.query or parts.fragment:
        raise Invalid("api_base must not contain a query string or fragment", field="api_base")
    return api_base


async def endpoint_refusal(provider: str | None, api_base: str | None, model: str | None = None) -> str | None:
    """Why ATOM may not call this endpoint for a tenant (see `atom_core.infra.egress`), or None.

    The address checked is the one litellm will call: the tenant's `api_base`, else the
    provider's default as litellm resolves it (the server's `<PROVIDER>_API_BASE` included).
    A default litellm does not reveal ahead of the call is checked as the call connects
    (`egress.connections_checked`). A host that does not resolve is allowed: there is
    nothing to connect to, the call fails on its own, and every later use checks it again.
    """
    address = api_base or await default_api_base(provider, model)
    if address is None:
        return None
    host, port = _host_and_port(address)
    if host is None:
        return None
    try:
        refused = await egress.check_host(host, port)
    except egress.Unresolvable:
        return None
    if refused and api_base is None:
        return f"is required for provider '{provider}' on this server (its default {refused})"
    return refused


async def default_api_base(provider: str | None, model: str | None = None) -> str | None:
    """The base URL litellm calls for `model` (or any model of `provider`) when given none; None
    when litellm decides it only during the call."""
    module = await engine.load()
    model = model or (f"{provider}/model" if provider else None)
    if not model:
        return None
    try:
        base = module.get_api_base(model, {})
        if base is None and provider:
            info = module.ProviderConfigManager.get_provider_model_info(model, module.LlmProviders(provider))
            base = info.get_api_base(None) if info is not None else None
    except Exception:  # a provider whose base needs settings it lacks: the call fails on its own
        return None
    return base if isinstance(base, str) and base else None


def _host_and_port(address: str) -> tuple[str | None, int | None]:
    """The host and port of a base URL; litellm's defaults are sometimes written without a scheme."""
    try:
        parts = urlsplit(address if "//" in address else f"//{address}")
        return parts.hostname, parts.port
    except ValueError:
        return None, None


def key_hint(api_key: str) -> str:
    return f"…{api_key[-4:]}" if len(api_key) >= HINT_MIN_KEY_LENGTH else "…"


def provider_of(model: str) -> str | None:
    """The provider prefix of a LiteLLM model string written with one ("openai/gpt-4o-mini")."""
    if isinstance(model, str) and "/" in model:
        return model.split("/", 1)[0] or None
    return None


# --- services -----------------------------------------------------------------------------


async def set_provider(
    ctx: Ctx,
    provider: str,
    *,
    api_key: str | _Unchanged | None = UNCHANGED,
    api_base: str | _Unchanged | None = UNCHANGED,
) -> ProviderInfo:
    """Create or update the tenant's settings for `provider`.

    A field left UNCHANGED keeps its stored value (nothing, for a new provider);
    None removes it. The key is encrypted here and never returned.
    """
    permissions.require(ctx, "providers.manage")
    provider = await check_provider(provider)
    changes: dict[str, str | None] = {}
    key_change = "unchanged"
    if api_key is not UNCHANGED:
        if api_key is None:
            changes |= {"api_key_encrypted": None, "api_key_hint": None}
            key_change = "removed"
        else:
            api_key = check_api_key(api_key)
            changes |= {"api_key_encrypted": crypto.encrypt(api_key), "api_key_hint": key_hint(api_key)}
            key_change = "set"
    if api_base is not UNCHANGED:
        changes["api_base"] = check_api_base(api_base)
        if refused := await endpoint_refusal(provider, changes["api_base"]):
            raise Invalid(f"api_base {refused}", field="api_base")

    try:
        return await _upsert(ctx, provider, changes, key_change)
    except IntegrityError:  # another admin created the same provider just now: update theirs
        try:
            return await _upsert(ctx, provider, changes, key_change)
        except IntegrityError:
            raise Conflict(f"provider '{provider}' was changed at the same time; try again") from None


async def _upsert(ctx: Ctx, provider: str, changes: dict[str, str | None], key_change: str) -> ProviderInfo:
    async with session_scope(ctx) as session:
        row = await _load(session, ctx, provider)
        created = row is None
        if row is None:
            row = ProviderCredential(tenant_id=ctx.tenant_id, provider=provider)
        for name, value in changes.items():
            setattr(row, name, value)
        row.updated_at = utcnow()
        session.add(row)
        await session.flush()
        details = {"provider": provider, "api_key": key_change, "api_key_hint": row.api_key_hint}
        if "api_base" in changes:
            details["api_base"] = row.api_base
        action = "provider.created" if created else "provider.updated"
        audit.record(session, ctx, action, f"provider:{provider}", details)
    config_cache.forget(ctx.tenant_id)
    return ProviderInfo.of(row)


async def list_providers(ctx: Ctx) -> list[ProviderInfo]:
    permissions.require(ctx, "providers.read")
    query = (
        select(ProviderCredential)
        .where(ProviderCredential.tenant_id == ctx.tenant_id)
        .order_by(ProviderCredential.provider)
    )
    async with session_scope(ctx, readonly=True) as session:
        return [ProviderInfo.of(row) for row in (await session.exec(query)).all()]


async def delete_provider(ctx: Ctx, provider: str) -> None:
    permissions.require(ctx, "providers.manage")
    async with session_scope(ctx) as session:
        row = await _load(session, ctx, provider)
        if row is None:
            raise _not_configured(provider)
        await session.delete(row)
        audit.record(session, ctx, "provider.deleted", f"provider:{provider}", {"provider": provider})
    config_cache.forget(ctx.tenant_id)


async def credentials_for(ctx: Ctx, model: str) -> Credentials:
    """The tenant's key and base URL for the provider of `model`, for the gateway only.

    Empty when the tenant configured nothing for that provider. Callers must not
    log, trace or return the key.
    """
    provider = provider_of(model)
    if provider is None:
        provider = await _implied_provider(model)
    if provider is None or provider == LOCAL_PROVIDER:
        return Credentials()
    async with session_scope(ctx, readonly=True) as session:
        row = await _load(session, ctx, provider)
    if row is None:
        return Credentials()
    return Credentials(api_key=_decrypt(row), api_base=row.api_base)


async def test_provider(ctx: Ctx, provider: str, model: str | None = None) -> ProviderTest:
    """One 1-token completion with the tenant's stored settings; never raises for a provider failure."""
    permissions.require(ctx, "providers.manage")
    provider = await check_provider(provider)
    model = _test_model(provider, model)
    async with session_scope(ctx, readonly=True) as session:
        row = await _load(session, ctx, provider)
    if row is None:
        raise _not_configured(provider)
    if refused := await endpoint_refusal(provider, row.api_base, model):
        return ProviderTest(False, 0, f"api_base {refused}")
    credentials = Credentials(api_key=_decrypt(row), api_base=row.api_base)
    module = await engine.load()
    started = time.perf_counter()
    try:
        with egress.connections_checked() as connections:
            return await _test_call(module, model, credentials, started)
    except Exception as exc:  # any provider failure is the answer, not an error of ours
        if connections.refused:
            return ProviderTest(False, _ms_since(started), f"the provider's address {connections.refused}")
        return ProviderTest(False, _ms_since(started), failures.describe_failure(exc))


async def _test_call(module: Any, model: str, credentials: Credentials, started: float) -> ProviderTest:
    async with asyncio.timeout(TEST_TIMEOUT_S + 1):  # a hard stop whatever litellm does with its own
        await module.acompletion(
            model=model,
            messages=[{"role": "user", "content": "ping"}],
            max_tokens=1,
            api_key=credentials.litellm_key(),
            api_base=credentials.api_base,
            timeout=TEST_TIMEOUT_S,
            num_retries=0,
            max_retries=0,
        )
    return ProviderTest(True, _ms_since(started))


test_provider.__test__ = False  # a service, not a pytest test, wherever it is imported


# --- helpers ------------------------------------------------------------------------------


async def _load(session: AsyncSession, ctx: Ctx, provider: str) -> ProviderCredential | None:
    query = select(ProviderCredential).where(
        ProviderCredential.tenant_id == ctx.tenant_id, ProviderCredential.provider == provider
    )
    return (await session.exec(query)).first()


def _not_configured(provider: str) -> NotFound:
    shown = f"'{provider}' " if isinstance(provider, str) and _NAME_RE.match(provider) else ""
    return NotFound(f"provider {shown}is not configured for this tenant", field="provider")


def _decrypt(row: ProviderCredential) -> str | None:
    if row.api_key_encrypted is None:
        return None
    try:
        return crypto.decrypt(row.api_key_encrypted)
    except crypto.CredentialUnreadable:
        raise crypto.CredentialUnreadable(
            f"the stored API key of provider '{row.provider}' cannot be read: the server's secret key has "
            "changed since it was saved; set the key again",
            field="provider",
        ) from None


async def _implied_provider(model: str) -> str | None:
    """The provider litellm picks for a model written without prefix ("gpt-4o-mini" -> openai)."""
    if not isinstance(model, str) or not model:
        return None
    module = await engine.load()
    try:
        return module.get_llm_provider(model)[1]
    except Exception:  # litellm cannot route it either: the call will fail on its own
        return None


def _test_model(provider: str, model: str | None) -> str:
    if model is None or model == "":
        model = TEST_MODELS.get(provider)
        if model is None:
            raise Invalid(f"model is required to test provider '{provider}' (e.g. '{provider}/<model>')", field="model")
    if not isinstance(model, str) or not MODEL_RE.match(model):
        raise Invalid("model must be a LiteLLM model name like 'gpt-4o-mini' or 'openai/gpt-4o-mini'", field="model")
    return model if model.startswith(f"{provider}/") else f"{provider}/{model}"


def _ms_since(started: float) -> int:
    return max(0, round((time.perf_counter() - started) * 1000))
