"""Settings of the waha-gateway service."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, model_validator

from chronoflow_platform.settings import BaseServiceSettings


class WahaGatewaySettings(BaseServiceSettings):
    """Environment variables of the waha-gateway service (see docs/configuration.md)."""

    http_port: int = Field(default=8005, validation_alias="HTTP_PORT")
    waha_base_url: str = Field(default="http://127.0.0.1:3000", validation_alias="WAHA_BASE_URL")
    waha_api_key: SecretStr | None = Field(default=None, validation_alias="WAHA_API_KEY")
    webhook_hmac_key: SecretStr | None = Field(
        default=None, validation_alias="WAHA_WEBHOOK_HMAC_KEY"
    )
    #: Texts per second per session; 0 turns pacing off.
    send_rate_per_second: float = Field(
        default=1.0, ge=0, le=1000, validation_alias="WAHA_SEND_RATE_PER_SECOND"
    )
    #: Each paced send leaves up to this much later than its slot, so sends are not metronomic.
    send_jitter_ms: int = Field(default=0, ge=0, le=60_000, validation_alias="WAHA_SEND_JITTER_MS")
    #: A send whose slot is further away than this is refused as ``paced`` (ask again later),
    #: so no requester waits past its own timeout for a text that is then sent anyway.
    send_max_wait_seconds: float = Field(
        default=10.0, ge=0, le=300, validation_alias="WAHA_SEND_MAX_WAIT_SECONDS"
    )
    #: How long a session rests after WhatsApp throttles it without a ``Retry-After``.
    rate_limit_pause_seconds: float = Field(
        default=60.0, ge=0, le=86_400, validation_alias="WAHA_RATE_LIMIT_PAUSE_SECONDS"
    )
    waha_timeout_seconds: float = Field(
        default=30.0, gt=0, le=300, validation_alias="WAHA_TIMEOUT_SECONDS"
    )
    #: How often the sessions are read from WAHA to catch up with webhooks that never came.
    status_poll_seconds: float = Field(
        default=30.0, gt=0, le=3600, validation_alias="WAHA_STATUS_POLL_SECONDS"
    )

    @model_validator(mode="after")
    def _webhooks_are_verified_in_production(self) -> Self:
        if self.profile == "production" and self.webhook_hmac_key is None:
            raise ValueError(
                "WAHA_WEBHOOK_HMAC_KEY is required in production: without it anyone could post "
                "session statuses (set the same value as WAHA's WHATSAPP_HOOK_HMAC_KEY)"
            )
        return self
