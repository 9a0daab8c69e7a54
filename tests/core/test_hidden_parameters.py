"""A failing statement's error, as it reaches the server log, lists no bound values
(SQLAlchemy's hide_parameters): they are tenants' content, hashes and encrypted keys."""

from __future__ import annotations

import logging
import uuid

import pytest
import sqlalchemy as sa

from atom_core.context import Ctx
from atom_core.db import session_scope


async def test_a_failing_statement_logs_no_parameter_values(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    secret = "tenant-content-" + uuid.uuid4().hex
    ctx = Ctx(tenant_id=uuid.uuid4(), user_id=None, role="owner", actor="test")
    with pytest.raises(sa.exc.DBAPIError) as failure:
        async with session_scope(ctx) as session:
            await session.exec(sa.text("SELECT :value AS v, atom_no_such_function()").bindparams(value=secret))
    logging.getLogger("atom_core.test").error("statement failed", exc_info=failure.value)
    assert "atom_no_such_function" in caplog.text  # the statement is logged, for the operator
    assert "parameters hidden" in caplog.text and secret not in caplog.text
