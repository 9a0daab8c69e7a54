"""Interfaces over the services: REST API, CLI (later MCP)."""
