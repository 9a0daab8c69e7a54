"""The one place litellm is imported and configured.

litellm is imported lazily (it takes seconds) and once: with the bundled
price map (it would otherwise download one at import), without telemetry,
and with ATOM's offline model registered as the custom provider `atom`.
"""

from __future__ import annotations

import asyncio
import os
from functools import cache
from types import ModuleType


@cache
def litellm() -> ModuleType:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm as module

    from atom_core.llm.offline import OfflineModel

    module.telemetry = False
    module.suppress_debug_info = True
    module.custom_provider_map = [
        *[p for p in module.custom_provider_map if p.get("provider") != "atom"],
        {"provider": "atom", "custom_handler": OfflineModel()},
    ]
    return module


def is_loaded() -> bool:
    return litellm.cache_info().currsize > 0


async def load() -> ModuleType:
    """`litellm()` for async code: the first import (seconds) runs in a thread
    so the event loop keeps serving; afterwards it is a plain cached call."""
    if is_loaded():
        return litellm()
    return await asyncio.to_thread(litellm)
