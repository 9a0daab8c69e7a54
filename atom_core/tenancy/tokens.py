"""Signed login tokens (JWT, HS256) with expiry."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from atom_core.errors import Unauthorized
from atom_core.settings import get_settings

ALGORITHM = "HS256"
ISSUER = "atom"


@dataclass(frozen=True)
class TokenClaims:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    issued_at: datetime


def issue(user_id: uuid.UUID, tenant_id: uuid.UUID, now: datetime | None = None) -> tuple[str, datetime]:
    settings = get_settings()
    now = now or datetime.now(UTC)
    expires_at = now + timedelta(seconds=settings.token_ttl_s)
    claims = {
        "sub": str(user_id),
        "tid": str(tenant_id),
        "iss": ISSUER,
        "iat": now.timestamp(),  # sub-second, so "sign out everywhere" is exact
        "exp": int(expires_at.timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.secret(), algorithm=ALGORITHM), expires_at.replace(microsecond=0)


def decode(token: str) -> TokenClaims:
    try:
        claims = jwt.decode(
            token,
            get_settings().secret(),
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["sub", "tid", "iat", "exp"]},
        )
        return TokenClaims(
            user_id=uuid.UUID(claims["sub"]),
            tenant_id=uuid.UUID(claims["tid"]),
            issued_at=datetime.fromtimestamp(claims["iat"], UTC),
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token has expired; sign in again", code="token_expired") from None
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise Unauthorized("token is not valid", code="invalid_token") from None
