"""Settings of the WAHA simulator; WAHA's own variable names where WAHA has one."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class SimulatorSettings(BaseSettings):
    """Environment variables of the simulator (documented in tools/waha-simulator/README.md)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    http_host: str = Field(default="127.0.0.1", validation_alias="HTTP_HOST")
    # 0 picks a free port (tests); WAHA itself listens on 3000.
    http_port: int = Field(default=3000, ge=0, le=65535, validation_alias="HTTP_PORT")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")

    api_key: SecretStr | None = Field(default=None, validation_alias="WAHA_API_KEY")
    """When set, every ``/api`` route needs it in ``X-Api-Key`` (``sha512:<hex>`` is accepted)."""

    hook_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="WHATSAPP_HOOK_URL"
    )
    """Global webhooks for every session; comma-separated (WAHA itself takes one URL)."""
    hook_events: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["session.status"], validation_alias="WHATSAPP_HOOK_EVENTS"
    )
    hook_hmac_key: SecretStr | None = Field(default=None, validation_alias="WHATSAPP_HOOK_HMAC_KEY")
    hook_retries_attempts: int = Field(
        default=3, ge=1, le=50, validation_alias="WHATSAPP_HOOK_RETRIES_ATTEMPTS"
    )
    hook_retries_delay_seconds: float = Field(
        default=2.0, ge=0, validation_alias="WHATSAPP_HOOK_RETRIES_DELAY_SECONDS"
    )
    hook_timeout_seconds: float = Field(
        default=10.0, gt=0, validation_alias="WAHA_SIM_HOOK_TIMEOUT_SECONDS"
    )

    start_sessions: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="WHATSAPP_START_SESSION"
    )
    """Sessions created and started when the simulator starts (comma-separated)."""

    starting_seconds: float = Field(
        default=0.2, ge=0, le=60, validation_alias="WAHA_SIM_STARTING_SECONDS"
    )
    """How long a session stays ``STARTING`` before asking for a QR scan (or working)."""
    auto_pair_seconds: float | None = Field(
        default=None, ge=0, le=3600, validation_alias="WAHA_SIM_AUTO_PAIR_SECONDS"
    )
    """When set, a session waiting in ``SCAN_QR_CODE`` pairs itself after this delay (dev)."""
    qr_refresh_seconds: float | None = Field(
        default=None, gt=0, validation_alias="WAHA_SIM_QR_REFRESH_SECONDS"
    )
    """When set, the QR rotates (and ``SCAN_QR_CODE`` is announced again) this often."""
    status_wait_seconds: float = Field(
        default=5.0, ge=0, le=60, validation_alias="WAHA_SIM_STATUS_WAIT_SECONDS"
    )
    """How long a call that needs a status waits for it before the 422 (WAHA waits 5 s)."""

    phone_number: str = Field(default="15550100001", validation_alias="WAHA_SIM_PHONE_NUMBER")
    """The account a paired session reports as ``me`` unless the pairing names another."""
    push_name: str = Field(default="ChronoFlow Simulator", validation_alias="WAHA_SIM_PUSH_NAME")

    @field_validator("hook_urls", "hook_events", "start_sessions", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
