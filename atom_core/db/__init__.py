"""Async persistence: one engine per process, tenant-scoped sessions."""

from atom_core.db.base import TenantScoped, UTCDateTime, utcnow
from atom_core.db.session import dispose_engine, get_engine, rls_scope, session_scope

__all__ = ["TenantScoped", "UTCDateTime", "dispose_engine", "get_engine", "rls_scope", "session_scope", "utcnow"]
