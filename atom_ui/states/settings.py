"""State of /settings: model providers, API keys and members of the workspace.

Secrets never stay in the state: a provider key goes from the form to the
service in one event (the page shows its hint only), and a new API key is kept
only while its "copy it now" dialog is open. What the caller's role may not do
is hidden; what the services refuse anyway is shown as they word it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import reflex as rx

from atom_core.errors import AtomError
from atom_core.llm import providers
from atom_core.tenancy import apikeys, permissions
from atom_core.tenancy import service as tenancy
from atom_ui.components.formatting import when
from atom_ui.session import current_ctx, user_message
from atom_ui.state import AuthState

log = logging.getLogger(__name__)

TABS = ("providers", "api-keys", "members")
KEYS_PAGE = 50


@dataclass
class ProviderRow:
    provider: str = ""
    key: str = ""  # the hint ("…wxyz"), "set" for a short key, or "no key"
    key_set: bool = False
    api_base: str = ""
    updated: str = ""


@dataclass
class KeyRow:
    id: str = ""
    name: str = ""
    prefix: str = ""
    role: str = ""
    created: str = ""
    last_used: str = ""
    revoked: bool = False
    can_revoke: bool = False


@dataclass
class MemberRow:
    user_id: str = ""
    email: str = ""
    role: str = ""
    joined: str = ""
    is_me: bool = False
    can_edit: bool = False


# --- view-model helpers (pure) ---------------------------------------------------------------


def provider_row(info: providers.ProviderInfo) -> ProviderRow:
    if not info.api_key_set:
        key = "no key"
    elif info.api_key_hint and info.api_key_hint != "…":
        key = info.api_key_hint
    else:
        key = "set (short key, no hint)"
    return ProviderRow(info.provider, key, info.api_key_set, info.api_base or "", when(info.updated_at))


def key_row(info: apikeys.ApiKeyInfo, *, user_id: str, role: str) -> KeyRow:
    mine = bool(user_id) and str(info.created_by) == user_id
    return KeyRow(
        id=str(info.id),
        name=info.name,
        prefix=info.prefix,
        role=info.role,
        created=when(info.created_at),
        last_used=when(info.last_used_at) or "never",
        revoked=info.revoked_at is not None,
        can_revoke=info.revoked_at is None
        and ((mine and permissions.can(role, "apikeys.revoke_own")) or permissions.can(role, "apikeys.revoke_any")),
    )


def grantable_roles(role: str) -> list[str]:
    """The roles `role` may hand out: none above its own, and owner only by an owner."""
    rank = permissions.ROLE_RANK.get(role, -1)
    return [
        r for r in reversed(permissions.ROLES) if permissions.ROLE_RANK[r] <= rank and (r != "owner" or role == "owner")
    ]


def member_row(info: tenancy.MemberInfo, *, user_id: str, role: str) -> MemberRow:
    me = str(info.user_id) == user_id
    editable = (
        permissions.can(role, "members.manage")
        and not me
        and (info.role != "owner" or role == "owner")
        and permissions.ROLE_RANK.get(info.role, 99) <= permissions.ROLE_RANK.get(role, -1)
    )
    return MemberRow(str(info.user_id), info.email, info.role, when(info.created_at), me, editable)


def field_errors(err: AtomError, fields: tuple[str, ...]) -> tuple[dict[str, str], str]:
    """A service error next to its field when the form has it, else above the form."""
    message = user_message(err)
    if err.field in fields:
        return {err.field: message}, ""
    return {}, message


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


# --- the state ------------------------------------------------------------------------------


class SettingsState(rx.State):
    tab: str = "providers"
    role: str = ""
    user_id: str = ""
    loaded_tenant: str = ""

    # Providers
    providers: list[ProviderRow] = []
    providers_error: str = ""
    provider_dialog_open: bool = False
    provider_edit: str = ""  # the provider being edited; "" adds a new one
    provider_edit_base: str = ""
    provider_errors: dict[str, str] = {}
    provider_form_error: str = ""
    provider_busy: bool = False
    test_provider_name: str = ""
    test_running: bool = False
    test_ok: bool = False
    test_message: str = ""

    # API keys
    keys: list[KeyRow] = []
    keys_cursor: str = ""
    keys_error: str = ""
    key_errors: dict[str, str] = {}
    key_form_error: str = ""
    new_key: str = ""  # shown once, cleared when its dialog closes
    new_key_name: str = ""

    # Members
    members: list[MemberRow] = []
    members_error: str = ""
    member_errors: dict[str, str] = {}
    member_form_error: str = ""

    # One confirmation dialog for every destructive action.
    confirm_kind: str = ""  # "" | delete_provider | revoke_key | remove_member
    confirm_target: str = ""
    confirm_title: str = ""
    confirm_body: str = ""

    @rx.var
    def can_manage_providers(self) -> bool:
        return permissions.can(self.role, "providers.manage") if self.role else False

    @rx.var
    def can_create_keys(self) -> bool:
        return permissions.can(self.role, "apikeys.create") if self.role else False

    @rx.var
    def can_manage_members(self) -> bool:
        return permissions.can(self.role, "members.manage") if self.role else False

    @rx.var
    def roles_to_grant(self) -> list[str]:
        return grantable_roles(self.role)

    @rx.var
    def new_key_open(self) -> bool:
        return self.new_key != ""

    @rx.var
    def confirm_open(self) -> bool:
        return self.confirm_kind != ""

    # --- loading ---

    @rx.event
    async def load(self):
        wanted = self.router.url.query_parameters.get("tab", "")
        if wanted in TABS:
            self.tab = wanted
        await self._load_all()

    @rx.event
    async def reload_if_tenant_changed(self):
        auth = await self.get_state(AuthState)
        if self.loaded_tenant and auth.tenant_id and auth.tenant_id != self.loaded_tenant:
            await self._load_all()

    @rx.event
    def set_tab(self, tab: str):
        if tab in TABS:
            self.tab = tab

    async def _load_all(self) -> None:
        self.new_key, self.new_key_name, self.confirm_kind = "", "", ""
        self.test_provider_name, self.test_message = "", ""
        try:
            ctx = await current_ctx(self)
        except Exception as err:
            self.providers_error = self.keys_error = self.members_error = user_message(err)
            return
        self.role, self.user_id, self.loaded_tenant = ctx.role, str(ctx.user_id or ""), str(ctx.tenant_id)
        await self._load_providers(ctx)
        await self._load_keys(ctx)
        await self._load_members(ctx)

    async def _load_providers(self, ctx) -> None:
        self.providers_error = ""
        try:
            self.providers = [provider_row(p) for p in await providers.list_providers(ctx)]
        except Exception as err:
            self.providers, self.providers_error = [], user_message(err)

    async def _load_keys(self, ctx, *, more: bool = False) -> None:
        self.keys_error = ""
        try:
            page = await apikeys.list_keys(ctx, limit=KEYS_PAGE, cursor=self.keys_cursor if more else None)
        except Exception as err:
            self.keys, self.keys_cursor, self.keys_error = [], "", user_message(err)
            return
        rows = [key_row(k, user_id=self.user_id, role=self.role) for k in page.items]
        self.keys = [*self.keys, *rows] if more else rows
        self.keys_cursor = page.next_cursor or ""

    async def _load_members(self, ctx) -> None:
        self.members_error = ""
        try:
            found = await tenancy.list_members(ctx)
        except Exception as err:
            self.members, self.members_error = [], user_message(err)
            return
        self.members = [member_row(m, user_id=self.user_id, role=self.role) for m in found]

    # --- providers ---

    @rx.event
    def open_provider_dialog(self, provider: str = ""):
        row = next((p for p in self.providers if p.provider == provider), None)
        self.provider_edit = row.provider if row else ""
        self.provider_edit_base = row.api_base if row else ""
        self.provider_errors, self.provider_form_error = {}, ""
        self.provider_dialog_open = True

    @rx.event
    def set_provider_dialog_open(self, is_open: bool):
        self.provider_dialog_open = is_open

    @rx.event
    async def save_provider(self, form: dict[str, Any]):
        provider = self.provider_edit or _text(form, "provider").strip()
        api_key = _text(form, "api_key")
        self.provider_errors, self.provider_form_error, self.provider_busy = {}, "", True
        yield
        try:
            ctx = await current_ctx(self)
            info = await providers.set_provider(
                ctx,
                provider,
                api_key=api_key if api_key.strip() else providers.UNCHANGED,
                api_base=_text(form, "api_base"),
            )
        except AtomError as err:
            self.provider_errors, self.provider_form_error = field_errors(err, ("provider", "api_key", "api_base"))
            self.provider_busy = False
            return
        except Exception as err:
            self.provider_form_error, self.provider_busy = user_message(err), False
            return
        self.provider_busy, self.provider_dialog_open = False, False
        if self.test_provider_name == info.provider:
            self.test_provider_name, self.test_message = "", ""
        await self._load_providers(ctx)
        yield rx.toast.success(f"Saved provider {info.provider}.")

    @rx.event(background=True)
    async def test_provider(self, form: dict[str, Any]):
        """One tiny completion with the stored settings (up to ~15 s): run outside the state lock."""
        provider, model = _text(form, "provider"), _text(form, "model").strip()
        async with self:
            if self.test_running:
                return
            self.test_provider_name, self.test_running, self.test_ok, self.test_message = provider, True, False, ""
            try:
                ctx = await current_ctx(self)
            except Exception as err:
                self.test_running, self.test_message = False, user_message(err)
                return
        try:
            result = await providers.test_provider(ctx, provider, model or None)
            ok = result.ok
            message = (
                f"Connected in {result.latency_ms} ms" if ok else user_message(AtomError(result.error or "failed"))
            )
        except Exception as err:
            ok, message = False, user_message(err)
        async with self:
            self.test_running, self.test_ok, self.test_message = False, ok, message

    # --- API keys ---

    @rx.event
    async def create_key(self, form: dict[str, Any]):
        self.key_errors, self.key_form_error = {}, ""
        try:
            ctx = await current_ctx(self)
            created = await apikeys.create(ctx, _text(form, "name"), _text(form, "role") or None)
        except AtomError as err:
            self.key_errors, self.key_form_error = field_errors(err, ("name", "role"))
            return
        except Exception as err:
            self.key_form_error = user_message(err)
            return
        self.new_key, self.new_key_name = created.key, created.info.name
        await self._load_keys(ctx)

    @rx.event
    def close_new_key(self, is_open: bool = False):
        if not is_open:
            self.new_key, self.new_key_name = "", ""

    @rx.event
    async def more_keys(self):
        if self.keys_cursor:
            await self._load_keys(await current_ctx(self), more=True)

    # --- members ---

    @rx.event
    async def add_member(self, form: dict[str, Any]):
        self.member_errors, self.member_form_error = {}, ""
        try:
            ctx = await current_ctx(self)
            info = await tenancy.add_member(ctx, _text(form, "email"), _text(form, "role") or "member")
        except AtomError as err:
            self.member_errors, self.member_form_error = field_errors(err, ("email", "role"))
            return
        except Exception as err:
            self.member_form_error = user_message(err)
            return
        await self._load_members(ctx)
        yield rx.toast.success(f"{info.email} joined as {info.role}.")

    @rx.event
    async def change_role(self, user_id: str, role: str):
        self.members_error = ""
        try:
            ctx = await current_ctx(self)
            info = await tenancy.change_member_role(ctx, uuid.UUID(user_id), role)
        except Exception as err:
            message = user_message(err)
            if (known := await self._ctx_or_none()) is not None:
                await self._load_members(known)  # the select shows the stored role again
            self.members_error = message
            return
        await self._load_members(ctx)
        yield rx.toast.success(f"{info.email} is now {info.role}.")

    async def _ctx_or_none(self):
        try:
            return await current_ctx(self)
        except Exception:
            return None

    # --- confirmations ---

    @rx.event
    def ask(self, kind: str, target: str, label: str):
        titles = {
            "delete_provider": (
                "Delete this provider?",
                f"The stored key and base URL of {label} are deleted. "
                "Agents whose model uses it stop working until it is set again.",
            ),
            "revoke_key": ("Revoke this API key?", f"{label} stops working at once. This cannot be undone."),
            "remove_member": (
                "Remove this member?",
                f"{label} loses access to this workspace, and the API keys they created here are revoked.",
            ),
        }
        if kind not in titles:
            return
        self.confirm_kind, self.confirm_target = kind, target
        self.confirm_title, self.confirm_body = titles[kind]

    @rx.event
    def set_confirm_open(self, is_open: bool):
        if not is_open:
            self.confirm_kind = ""

    @rx.event
    async def confirm(self):
        kind, target = self.confirm_kind, self.confirm_target
        self.confirm_kind = ""
        try:
            ctx = await current_ctx(self)
            if kind == "delete_provider":
                await providers.delete_provider(ctx, target)
                await self._load_providers(ctx)
                yield rx.toast.success(f"Deleted provider {target}.")
            elif kind == "revoke_key":
                info = await apikeys.revoke(ctx, uuid.UUID(target))
                await self._load_keys(ctx)
                yield rx.toast.success(f"Revoked {info.name}.")
            elif kind == "remove_member":
                await tenancy.remove_member(ctx, uuid.UUID(target))
                await self._load_members(ctx)
                yield rx.toast.success("Member removed.")
        except Exception as err:
            message = user_message(err)
            if kind == "delete_provider":
                self.providers_error = message
            elif kind == "revoke_key":
                self.keys_error = message
            else:
                self.members_error = message
