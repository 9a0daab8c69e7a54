"""What every page state needs to call a service: the signed-in caller's context,
and a message to show when a call fails.

Page states stay separate from AuthState (small states, loaded per page) and
reach the session through `get_state`:

    ctx = await current_ctx(self)
    try:
        self.items = [...] from await service(ctx, ...)
    except AtomError as err:
        self.error = user_message(err)
"""

from __future__ import annotations

import logging

import reflex as rx

from atom_core.context import Ctx
from atom_core.errors import AtomError
from atom_core.tenancy import service as tenancy
from atom_ui.state import GENERIC_ERROR, AuthState, _as_uuid, _sentence

log = logging.getLogger(__name__)


async def current_ctx(state: rx.State) -> Ctx:
    """The caller's context, checked against the token on every call (a revoked
    session stops working at once). Raises Unauthorized when signed out."""
    auth = await state.get_state(AuthState)
    return await tenancy.authenticate(auth.token, _as_uuid(auth.tenant_id))


def user_message(err: BaseException) -> str:
    """A sentence for the user: a domain error's own message, otherwise a generic one
    (the details go to the log, never to the page)."""
    if isinstance(err, AtomError):
        return _sentence(err.message)
    log.error("unexpected error in a page handler", exc_info=err)
    return GENERIC_ERROR
