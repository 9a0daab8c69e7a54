"""A list state read a page at a time through a service's cursors, with Previous and
Next (see `components.pager.cursor_pager`), reloaded when the workspace changes."""

from __future__ import annotations

from typing import Any

import reflex as rx

from atom_core.context import Ctx
from atom_ui.session import current_ctx, user_message
from atom_ui.state import AuthState


class CursorPages(rx.State, mixin=True):
    """The state that uses it declares `rows: list[RowType]` and implements `_page`."""

    loading: bool = False
    error: str = ""
    page: int = 1
    next_cursor: str = ""
    _cursors: list[str] = []  # the cursor that opened each page shown so far
    _tenant: str = ""  # the workspace the rows belong to

    async def _page(self, ctx: Ctx, cursor: str | None) -> tuple[list[Any], str | None]:
        """The rows of one page and the cursor of the next one (None at the end)."""
        raise NotImplementedError

    @rx.event
    async def load(self):
        await self._first_page()

    @rx.event
    async def reload_if_tenant_changed(self):
        """on_mount of a marker keyed on the workspace: switching workspace reloads the list."""
        auth = await self.get_state(AuthState)
        if auth.tenant_id and self._tenant and auth.tenant_id != self._tenant and not self.loading:
            await self._first_page()

    @rx.event
    async def next_page(self):
        if self.next_cursor:
            self._cursors.append(self.next_cursor)
            self.page += 1
            await self._fetch(self.next_cursor)

    @rx.event
    async def previous_page(self):
        if self.page > 1:
            self._cursors.pop()
            self.page -= 1
            await self._fetch(self._cursors[-1])

    async def _first_page(self) -> None:
        self._cursors, self.page = [""], 1
        await self._fetch("")

    async def _fetch(self, cursor: str) -> None:
        self.loading, self.error = True, ""
        try:
            ctx = await current_ctx(self)
            rows, next_cursor = await self._page(ctx, cursor or None)
            self._tenant = str(ctx.tenant_id)
        except Exception as err:
            self.rows, self.next_cursor, self.error = [], "", user_message(err)
        else:
            if rows != self.rows:  # unchanged on a revisit: not sent to the browser again
                self.rows = rows
            self.next_cursor = next_cursor or ""
        self.loading = False
