"""ATOM dashboard: Reflex pages over the atom_core services."""
