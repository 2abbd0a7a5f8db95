"""The settings every service shares; each service subclasses it with its own fields."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class BaseServiceSettings(BaseSettings):
    """Read from environment variables (and a ``.env`` file); names are documented in docs/."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    nats_url: str = Field(default="nats://127.0.0.1:4222", validation_alias="NATS_URL")
    database_url: SecretStr = Field(
        default=SecretStr("postgresql+asyncpg://postgres@127.0.0.1:5432/chronoflow"),
        validation_alias="DATABASE_URL",
    )
    http_host: str = Field(default="127.0.0.1", validation_alias="HTTP_HOST")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    log_format: Literal["json", "console"] = Field(default="json", validation_alias="LOG_FORMAT")
    profile: Literal["development", "production"] = Field(
        default="production", validation_alias="CHRONOFLOW_PROFILE"
    )
    # JetStream drops a second message with the same Nats-Msg-Id inside this window.
    duplicate_window_seconds: float = Field(
        default=600.0, gt=0, validation_alias="CHRONOFLOW_DUPLICATE_WINDOW_SECONDS"
    )
    stream_replicas: int = Field(default=1, ge=1, le=5, validation_alias="NATS_STREAM_REPLICAS")
