"""Maturity levels, policies, guardrails, budgets and the audit log."""
