"""One router per feature; `atom_core.interfaces.api.app` mounts them."""
