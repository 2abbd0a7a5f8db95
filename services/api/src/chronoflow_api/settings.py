"""Settings of the api service and the projector."""

from __future__ import annotations

from pydantic import Field, SecretStr

from chronoflow_platform.settings import BaseServiceSettings


class ApiSettings(BaseServiceSettings):
    """Environment variables of the api (see docs/configuration.md)."""

    http_port: int = Field(default=8000, validation_alias="HTTP_PORT")
    default_timezone: str = Field(default="UTC", validation_alias="DEFAULT_TIMEZONE")
    allowed_methods: str = Field(
        default="GET,POST,PUT,PATCH,DELETE", validation_alias="ALLOWED_METHODS"
    )
    # Fernet key(s), comma-separated, newest first: header secrets are encrypted before they
    # enter the immutable event log. Rotation: put the new key first, keep the old ones after.
    secrets_key: SecretStr | None = Field(default=None, validation_alias="CHRONOFLOW_SECRETS_KEY")
    read_your_writes_timeout_seconds: float = Field(
        default=5.0, gt=0, validation_alias="CHRONOFLOW_READ_YOUR_WRITES_TIMEOUT_SECONDS"
    )


class ProjectorSettings(BaseServiceSettings):
    """Environment variables of the projector."""

    http_port: int = Field(default=8010, validation_alias="HTTP_PORT")
