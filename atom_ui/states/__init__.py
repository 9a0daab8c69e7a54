"""Page states: one small substate per page, calling atom_core services only."""
