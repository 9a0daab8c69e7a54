"""Request and response bodies of the REST API (see shared/API.md).

Requests forbid unknown fields so a typo is an error, not a silent no-op.
Length limits come from the services' own rules.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from atom_core.tenancy.validation import EMAIL_MAX, NAME_MAX, PASSWORD_MAX
from atom_core.validation import Name, Text

T = TypeVar("T")
Role = Literal["owner", "admin", "member", "viewer"]


class Request(BaseModel):
    # NaN and Infinity are not JSON, though Python's decoder reads them.
    model_config = ConfigDict(extra="forbid", str_max_length=10_000, allow_inf_nan=False)


# The next_cursor of a previous page: URL-safe base64.
Cursor = Annotated[str, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]*$", description="next_cursor of the last page")]


class SignupIn(Request):
    email: EmailStr = Field(max_length=EMAIL_MAX)
    password: Text(PASSWORD_MAX)
    tenant_name: Name(NAME_MAX)


class SignupOut(BaseModel):
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    token: str
    expires_at: datetime


class LoginIn(Request):
    email: EmailStr = Field(max_length=EMAIL_MAX)
    password: Text(PASSWORD_MAX)


class LoginOut(BaseModel):
    token: str
    expires_at: datetime


class TenantOut(BaseModel):
    tenant_id: uuid.UUID
    name: str
    slug: str
    role: Role


class MeOut(BaseModel):
    user_id: uuid.UUID | None
    email: str | None
    tenant_id: uuid.UUID
    role: Role
    tenants: list[TenantOut]
    api_key_id: uuid.UUID | None = None


class ApiKeyIn(Request):
    name: Name(NAME_MAX)
    role: Role | None = None


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str
    role: Role
    owner_kind: Literal["user", "operator"] = Field(
        description="`user`: created_by owns it (revoked when they leave the tenant); `operator`: made with the CLI"
    )
    created_by: uuid.UUID | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(description="The whole key. It is shown only once: store it now.")


class MemberIn(Request):
    email: EmailStr = Field(max_length=EMAIL_MAX)
    role: Role


class MemberOut(BaseModel):
    user_id: uuid.UUID
    email: str
    role: Role
    created_at: datetime


class ListOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")  # e.g. `details`: every problem of a rejected body
    code: str
    message: str
    field: str | None = Field(None, description="The field, parameter or header at fault: a path like input.items[3]")


class ErrorOut(BaseModel):
    error: ErrorBody


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    checks: dict[str, str]
