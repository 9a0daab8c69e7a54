"""Agents: definitions, marketplace catalog, the runtime loop and its tools."""
