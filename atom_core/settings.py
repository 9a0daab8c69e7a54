"""Settings: environment variables with the ATOM_ prefix, or a `.env` file.

The mode (embedded or server) is chosen only here: a PostgreSQL
`ATOM_DATABASE_URL` and an `ATOM_REDIS_URL` turn on the server pieces.
"""

from __future__ import annotations

import os
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from limits import parse as parse_rate
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

SECRET_KEY_FILE = "secret_key"
# An IP address or a host name: nothing a shell or a URL treats specially.
HOST_PATTERN = re.compile(r"^[A-Za-z0-9.:-]{1,253}$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATOM_", env_file=".env", extra="ignore")

    home: Path = Path(".atom")
    database_url: str | None = None
    database_admin_url: str | None = None
    redis_url: str | None = None
    lance_uri: str | None = None
    executor: Literal["embedded", "distributed"] = "embedded"
    secret_key: SecretStr | None = None
    token_ttl_s: int = Field(3600, ge=60, le=30 * 24 * 3600)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    hsts_max_age_s: int = Field(0, ge=0, description="0 disables Strict-Transport-Security")
    auth_rate_limit: str = "10/minute"
    # Loopback unless asked: a wider bind exposes the seeded demo account to the network.
    host: str = Field("127.0.0.1", pattern=HOST_PATTERN.pattern, description="interface `atom serve` binds")
    port: int = Field(3000, ge=1, le=65535)
    llm_timeout_s: float = Field(60.0, gt=0, le=3600)
    # Off: a tenant without its own key must not spend the operator's (OPENAI_API_KEY, …).
    allow_env_provider_keys: bool = False
    # http_get and providers' api_base may reach private/loopback addresses (never link-local).
    # Unset: allowed in embedded mode (Ollama on localhost), refused in server mode.
    allow_private_networks: bool | None = None
    llm_max_retries: int = Field(2, ge=0, le=10)
    llm_retry_base_s: float = Field(0.5, ge=0, le=60, description="first backoff; doubles per retry, with jitter")
    llm_retry_max_s: float = Field(8.0, ge=0, le=300)
    run_timeout_s: float = Field(300.0, gt=0, le=24 * 3600)
    max_concurrent_runs: int = Field(50, ge=1, le=100_000, description="per tenant")
    agent_max_iterations: int = Field(8, ge=1, le=100, description="model calls per run")
    tool_timeout_s: float = Field(15.0, gt=0, le=600)
    slot_lease_s: float = Field(30.0, ge=0.3, le=3600, description="a concurrency slot's lease; renewed every third")
    stream_access_check_s: float = Field(5.0, gt=0, le=3600, description="how often open streams re-check access")
    # Workflows (see atom_core/workflows/engine.py for the lease and sweep rules).
    queue_redis_url: str | None = Field(None, description="Dramatiq's Redis; default: ATOM_REDIS_URL's next database")
    workflow_max_parallel_steps: int = Field(8, ge=1, le=256, description="steps in flight per run")
    workflow_max_concurrent_steps: int = Field(64, ge=1, le=100_000, description="steps in flight per tenant")
    workflow_step_timeout_s: float = Field(600.0, gt=0, le=24 * 3600, description="when a step sets none")
    workflow_lease_s: float = Field(15.0, ge=1, le=600, description="a running step's lease; renewed every third")
    workflow_sweep_interval_s: float = Field(10.0, ge=0.5, le=3600)
    workflow_max_active_runs: int = Field(200, ge=1, le=1_000_000, description="unfinished runs per tenant")
    workflow_run_rate_limit: str = Field("600/minute", description="new runs per tenant; '' turns it off")
    # Modules imported at startup, e.g. to register custom tools (comma-separated).
    plugins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: str = "INFO"
    # Unset: /metrics answers clients on this machine only; set: only `Authorization: Bearer <token>`.
    metrics_token: SecretStr | None = None

    @field_validator("cors_origins", "plugins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("workflow_run_rate_limit")
    @classmethod
    def _rate_rule(cls, value: str) -> str:
        if value:
            parse_rate(value)  # a ValueError names the setting at startup, not in a user's request
        return value

    @field_validator("database_url", "database_admin_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        return to_async_url(value) if value else value

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.home / 'atom.db').resolve()}"

    @property
    def migration_url(self) -> str:
        """Migrations run as the owner role; the app connects as a non-owner role."""
        return self.database_admin_url or self.db_url

    @property
    def is_postgres(self) -> bool:
        return self.db_url.startswith("postgresql")

    @property
    def private_networks_allowed(self) -> bool:
        """See `allow_private_networks`; the mode decides when it is unset."""
        return self.allow_private_networks if self.allow_private_networks is not None else not self.is_postgres

    @property
    def app_db_role(self) -> str | None:
        """The role the application connects as on PostgreSQL (RLS applies to it)."""
        return make_url(self.db_url).username if self.is_postgres else None

    @property
    def queue_url(self) -> str | None:
        """Dramatiq's broker: its own Redis database, so queue keys never mix with limits and events."""
        if self.queue_redis_url or not self.redis_url:
            return self.queue_redis_url
        url = make_url(self.redis_url)
        database = int(url.database or 0)
        return url.set(database=str((database + 1) % 16)).render_as_string(hide_password=False)

    @property
    def lance_path(self) -> str:
        return self.lance_uri or str((self.home / "lancedb").resolve())

    def secret(self) -> str:
        """The signing secret: the configured one, or one generated into ATOM_HOME once."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return _home_secret(self.home.resolve())

    def masked(self) -> dict[str, object]:
        """Effective settings for display, with secrets and passwords masked."""
        shown: dict[str, object] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********"
            elif name.endswith("_url") and value:
                value = make_url(value).render_as_string(hide_password=True)
            shown[name] = value
        shown["database_url"] = make_url(self.db_url).render_as_string(hide_password=True)
        shown["secret_key"] = "******** (set)" if self.secret_key else f"******** (file {self.home / SECRET_KEY_FILE})"
        return shown


def to_async_url(url: str) -> str:
    """Accept plain `postgresql://` / `sqlite://` URLs and pick the async drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+asyncpg"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


@lru_cache(maxsize=8)
def _home_secret(home: Path) -> str:
    path = home / SECRET_KEY_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests and CLI options change the environment)."""
    get_settings.cache_clear()
    _home_secret.cache_clear()
