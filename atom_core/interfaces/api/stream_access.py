"""Access re-checked for as long as an event stream is open.

A stream's requester is authenticated once, when it opens; a member removed,
a role lowered, an API key revoked, a user signed out everywhere or a token
expired afterwards must stop receiving. `Access.check` authenticates the
same credential again (one indexed query). `watch` does so every
`ATOM_STREAM_ACCESS_CHECK_S` and at once when the tenant's memberships
change (the member services announce it on the bus), and returns when
access has ended; a stream then sends `ACCESS_REVOKED` and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from atom_core.context import Ctx
from atom_core.errors import Forbidden, Unauthorized
from atom_core.infra import events
from atom_core.settings import get_settings
from atom_core.tenancy import permissions
from atom_core.tenancy import service as tenancy

log = logging.getLogger(__name__)
ACCESS_REVOKED = (
    "event: access.revoked\n"
    f"data: {json.dumps({'type': 'access.revoked', 'message': 'your access to this tenant has ended'})}\n\n"
)


@dataclass(frozen=True)
class Access:
    """Who opened a stream (`credential`: their token or API key) and what reading it needs."""

    credential: str
    ctx: Ctx
    permission: str

    async def check(self) -> bool:
        """Whether the credential still opens this tenant with a role allowed `permission`."""
        try:
            ctx = await tenancy.authenticate(self.credential, self.ctx.tenant_id, request_id=self.ctx.request_id)
        except (Unauthorized, Forbidden):
            return False
        return permissions.can(ctx.role, self.permission)


async def watch(access: Access) -> None:
    """Return once `access` has ended (checked on an interval and on membership events)."""
    changed, listening = asyncio.Event(), asyncio.Event()
    listener = asyncio.create_task(_membership_events(access.ctx, changed, listening))
    try:
        await listening.wait()  # subscribed first: a change right after the first check still wakes us
        while True:
            changed.clear()  # before the check: a change announced during it wakes the next one
            if not await access.check():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), get_settings().stream_access_check_s)
    finally:
        listener.cancel()


def start_watch(access: Access, on_end: Callable[[], None]) -> asyncio.Task:
    """`watch` as a task that calls `on_end` when access has ended (or could not be checked)."""
    task = asyncio.create_task(watch(access))

    def ended(done: asyncio.Task) -> None:
        if not done.cancelled() and done.exception() is not None:  # fail closed, say why in the log
            log.warning("a stream's access check failed (%s); closing it", type(done.exception()).__name__)
        on_end()

    task.add_done_callback(ended)
    return task


async def _membership_events(ctx: Ctx, changed: asyncio.Event, listening: asyncio.Event) -> None:
    topic = events.channel(ctx.tenant_id, tenancy.MEMBERSHIP_TOPIC)
    try:
        async with events.get_bus().listen(topic) as received:
            listening.set()
            async for _ in received:
                changed.set()
    except Exception as exc:  # without the bus, the interval still ends the stream
        log.warning("a stream cannot follow membership changes (%s); it re-checks on its interval", type(exc).__name__)
    finally:
        listening.set()
