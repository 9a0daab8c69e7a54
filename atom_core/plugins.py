"""Modules named in ATOM_PLUGINS, imported once per process (e.g. to register tools).

Every process that runs steps or serves requests loads them: the API, the CLI
and the workflow workers, so a tool a workflow names exists wherever it runs.
"""

from __future__ import annotations

import importlib

from atom_core.errors import Invalid
from atom_core.settings import get_settings


def load_plugins() -> list[str]:
    loaded = []
    for name in get_settings().plugins:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise Invalid(f"plugin {name!r} cannot be imported: {exc}", field="ATOM_PLUGINS") from None
        loaded.append(name)
    return loaded
