"""Every table's module imported once, so `target_metadata` knows them all.

Add the models module of each new feature here; the RLS coverage test walks
this metadata to find tenant-owned tables.
"""

from sqlmodel import SQLModel

import atom_core.agents.models
import atom_core.agents.runs
import atom_core.agents.tool_settings
import atom_core.analytics.models
import atom_core.governance.audit
import atom_core.llm.models
import atom_core.tenancy.models
import atom_core.workflows.models  # noqa: F401

target_metadata = SQLModel.metadata
