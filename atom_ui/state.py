"""Session state: who is signed in, in which tenant, and the sign-in forms.

The token lives in the browser's localStorage so a session survives reloads;
every shell page re-checks it on load, so an expired or revoked token sends
the user back to the login page. Only strings are kept here (ids as str).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import reflex as rx

from atom_core.errors import AtomError
from atom_core.tenancy import service as tenancy

log = logging.getLogger(__name__)

LOGIN_ROUTE = "/login"
HOME_ROUTE = "/marketplace"
GENERIC_ERROR = "Something went wrong on our side. Please try again in a moment."


def _as_uuid(value: str) -> uuid.UUID | None:
    """A stored tenant id, or None when absent or tampered with."""
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def _sentence(message: str) -> str:
    """Service messages are lower-case fragments ("email is required"); show them as sentences."""
    return message[:1].upper() + message[1:]


class AuthState(rx.State):
    """The session and the login/signup forms that start it."""

    # sync=True: signing out in one tab signs out the others' next request too.
    token: str = rx.LocalStorage("", name="atom_token", sync=True)
    tenant_id: str = rx.LocalStorage("", name="atom_tenant", sync=True)

    user_email: str = ""
    role: str = ""
    # Each entry: {"tenant_id", "name", "role"}.
    tenants: list[dict[str, str]] = []

    field_errors: dict[str, str] = {}
    form_error: str = ""
    notice: str = ""
    load_error: str = ""
    busy: bool = False

    @rx.var
    def signed_in(self) -> bool:
        return bool(self.user_email)

    @rx.var
    def tenant_name(self) -> str:
        return next((t["name"] for t in self.tenants if t["tenant_id"] == self.tenant_id), "")

    @rx.event
    async def check_session(self):
        """on_load guard of every shell page."""
        if not self.token:
            return rx.redirect(LOGIN_ROUTE, replace=True)
        self.load_error = ""
        try:
            me = await tenancy.session(self.token, _as_uuid(self.tenant_id))
        except AtomError as err:
            self._clear_session()
            self.notice = _sentence(err.message)
            return rx.redirect(LOGIN_ROUTE, replace=True)
        except Exception:
            # Keep the token: the service failed, not the session.
            log.exception("session check failed")
            self.load_error = GENERIC_ERROR
            return None
        self._apply_me(me)
        return None

    @rx.event
    async def login(self, form: dict[str, Any]):
        self._start_form()
        yield
        try:
            result = await tenancy.login(
                form.get("email", ""), form.get("password", ""), client_ip=self.router.session.client_ip
            )
        except AtomError as err:
            self._show_error(err, fields=("email", "password"))
            return
        except Exception:
            log.exception("login failed")
            self._show_error(None)
            return
        self._start_session(result.token)
        yield rx.redirect(HOME_ROUTE, replace=True)

    @rx.event
    async def signup(self, form: dict[str, Any]):
        self._start_form()
        yield
        try:
            result = await tenancy.signup(
                form.get("email", ""),
                form.get("password", ""),
                form.get("tenant_name", ""),
                client_ip=self.router.session.client_ip,
            )
        except AtomError as err:
            self._show_error(err, fields=("email", "password", "tenant_name"))
            return
        except Exception:
            log.exception("signup failed")
            self._show_error(None)
            return
        self._start_session(result.token, str(result.tenant_id))
        yield rx.redirect(HOME_ROUTE, replace=True)

    @rx.event
    async def switch_tenant(self, tenant_id: str):
        try:
            me = await tenancy.session(self.token, _as_uuid(tenant_id))
        except AtomError as err:
            return rx.toast.error(_sentence(err.message))
        except Exception:
            log.exception("tenant switch failed")
            return rx.toast.error(GENERIC_ERROR)
        self._apply_me(me)
        return None

    @rx.event
    def sign_out(self):
        self._clear_session()
        self.notice = "You have signed out."
        return rx.redirect(LOGIN_ROUTE, replace=True)

    @rx.event
    def reset_form(self):
        """on_load of the login/signup pages: start with a clean form."""
        self._reset_form()

    def _reset_form(self) -> None:
        self.field_errors = {}
        self.form_error = ""
        self.busy = False

    def _start_form(self) -> None:
        self._reset_form()
        self.notice = ""
        self.busy = True

    def _show_error(self, err: AtomError | None, fields: tuple[str, ...] = ()) -> None:
        """Show a domain error next to its field, else above the form; None means unexpected."""
        self.busy = False
        if err is None:
            self.form_error = GENERIC_ERROR
        elif err.field in fields:
            self.field_errors = {err.field: _sentence(err.message)}
        else:
            self.form_error = _sentence(err.message)

    def _start_session(self, token: str, tenant_id: str = "") -> None:
        self.busy = False
        self.token = token
        self.tenant_id = tenant_id

    def _apply_me(self, me: tenancy.Me) -> None:
        self.user_email = me.email or ""
        self.role = me.role
        self.tenant_id = str(me.tenant_id)
        self.tenants = [{"tenant_id": str(t.tenant_id), "name": t.name, "role": t.role} for t in me.tenants]

    def _clear_session(self) -> None:
        self.token = ""
        self.tenant_id = ""
        self.user_email = ""
        self.role = ""
        self.tenants = []
        self.load_error = ""
