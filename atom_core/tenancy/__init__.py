"""Tenants, users, memberships, roles, API keys, passwords and tokens."""
