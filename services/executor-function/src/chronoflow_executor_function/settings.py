"""Settings of the executor-function service."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from pydantic import Field, field_validator

from chronoflow_platform.executor.settings import ExecutorSettings, executor_settings_config

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: ChronoFlow's own secrets and connection strings: never readable by user code, whatever the
#: allowlist says (an operator listing one is a mistake worth stopping the service for).
FORBIDDEN_ENV = frozenset(
    {
        "DATABASE_URL",
        "NATS_URL",
        "CHRONOFLOW_SECRETS_KEY",
        "CHRONOFLOW_WEBHOOK_SECRET",
        "WAHA_API_KEY",
        "WAHA_WEBHOOK_HMAC_KEY",
    }
)


def _default_cache_dir() -> Path:
    # The images run with a read-only root file system; /tmp is the writable volume.
    return Path(tempfile.gettempdir()) / "chronoflow-function-cache"


class ExecutorFunctionSettings(ExecutorSettings):
    """Environment variables of the executor-function service (see docs/configuration.md);
    the consumer's are ``EXECUTOR_FUNCTION_ACK_WAIT_SECONDS`` and its siblings."""

    model_config = executor_settings_config("EXECUTOR_FUNCTION_")

    http_port: int = Field(default=8004, validation_alias="HTTP_PORT")
    #: Sandbox worker processes: how many functions run at once in this replica (each holds
    #: its worker while it waits on ctx.http, so size it for I/O, not cores; ~40 MB each).
    pool_size: int = Field(default=4, ge=1, le=64, validation_alias="FUNCTION_POOL_SIZE")
    #: Where the compiled QuickJS module is cached (native code: private to the service user).
    cache_dir: Path = Field(
        default_factory=_default_cache_dir, validation_alias="FUNCTION_CACHE_DIR"
    )
    #: Comma-separated names of environment variables ``ctx.env`` may read.
    env_allowlist: str = Field(default="", validation_alias="FUNCTION_ENV_ALLOWLIST")
    #: How long ``ctx.message.send`` waits for the waha-gateway's answer (the gateway itself
    #: may hold a send up to 10 s for its pacing).
    message_timeout_seconds: float = Field(
        default=30.0, gt=0, le=300, validation_alias="FUNCTION_MESSAGE_TIMEOUT_SECONDS"
    )
    #: Compare-and-set attempts when saving ``ctx.state`` against concurrent runs.
    state_write_attempts: int = Field(
        default=50, ge=1, le=1000, validation_alias="FUNCTION_STATE_WRITE_ATTEMPTS"
    )
    #: The egress allowlist of ``ctx.http`` (chronoflow_egress.ALLOW_ENV_VAR); unset in
    #: development means loopback, and production refuses one.
    egress_allow: str | None = Field(default=None, validation_alias="CHRONOFLOW_EGRESS_ALLOW")

    @field_validator("env_allowlist")
    @classmethod
    def _allowlist_names(cls, value: str) -> str:
        for name in _split(value):
            if not _ENV_NAME.match(name):
                raise ValueError(f"FUNCTION_ENV_ALLOWLIST: {name!r} is not a variable name")
            if name.upper() in FORBIDDEN_ENV:
                raise ValueError(
                    f"FUNCTION_ENV_ALLOWLIST: {name} is ChronoFlow's own secret or connection "
                    "string and cannot be exposed to functions"
                )
        return value

    def env_names(self) -> tuple[str, ...]:
        """The allowlisted variable names, in order, without duplicates."""
        return tuple(dict.fromkeys(_split(self.env_allowlist)))


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]
