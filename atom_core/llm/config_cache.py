"""The in-process cache behind `model_config`, apart so that the modules that
change settings (providers, pricing) can clear it without an import cycle."""

from __future__ import annotations

import time
from typing import Any

TTL_S = 5.0
_entries: dict[tuple[object, str], tuple[float, Any]] = {}


def get(tenant_id: object, model: str) -> Any | None:
    hit = _entries.get((tenant_id, model))
    return hit[1] if hit and hit[0] > time.monotonic() else None


def put(tenant_id: object, model: str, value: Any) -> None:
    _entries[(tenant_id, model)] = (time.monotonic() + TTL_S, value)


def forget(tenant_id: object | None = None) -> None:
    """Drop cached settings (of one tenant, or all) after a change."""
    for key in [k for k in _entries if tenant_id is None or k[0] == tenant_id]:
        del _entries[key]
