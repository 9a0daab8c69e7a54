"""What the API process does before its first request."""

from __future__ import annotations

from atom_core.interfaces.api.app import create_api
from atom_core.llm import engine


async def test_startup_loads_litellm_before_the_first_request() -> None:
    engine.litellm.cache_clear()  # as in a fresh process (Python keeps the module itself imported)
    app = create_api()
    assert not engine.is_loaded()
    async with app.router.lifespan_context(app):
        assert engine.is_loaded()
        assert "atom" in {p["provider"] for p in engine.litellm().custom_provider_map}  # configured, not just imported
