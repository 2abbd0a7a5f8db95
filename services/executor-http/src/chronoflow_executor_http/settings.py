"""Settings of the executor-http service."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from chronoflow_egress.signing import secret_key
from chronoflow_platform.executor.settings import ExecutorSettings, executor_settings_config


class ExecutorHttpSettings(ExecutorSettings):
    """Environment variables of the executor-http service (see docs/executor-http.md); the
    consumer's are ``EXECUTOR_HTTP_ACK_WAIT_SECONDS`` and its siblings."""

    # A validation error must not print the environment back: it holds signing secrets.
    model_config = SettingsConfigDict(
        **executor_settings_config("EXECUTOR_HTTP_"), hide_input_in_errors=True
    )

    http_port: int = Field(default=8002, validation_alias="HTTP_PORT")
    #: A chrono without ``config.timeoutMs`` gets this much for the whole exchange.
    request_timeout_ms: int = Field(
        default=10_000, ge=1, le=600_000, validation_alias="HTTP_REQUEST_TIMEOUT_MS"
    )
    allowed_methods: str = Field(
        default="GET,POST,PUT,PATCH,DELETE", validation_alias="ALLOWED_METHODS"
    )
    #: Requests in flight at once in this process (each replica has its own).
    concurrency: int = Field(
        default=200, ge=1, le=10_000, validation_alias="EXECUTOR_HTTP_CONCURRENCY"
    )
    #: Most messages one pull request asks for; never more than the free slots.
    fetch_batch: int = Field(
        default=100, ge=1, le=1000, validation_alias="EXECUTOR_HTTP_FETCH_BATCH"
    )
    #: Pooled connections of the one client (0: as many as ``concurrency``).
    max_connections: int = Field(default=0, ge=0, validation_alias="EXECUTOR_HTTP_MAX_CONNECTIONS")
    #: Unacknowledged messages the durable consumer allows across all replicas.
    max_ack_pending: int = Field(default=20_000, ge=1)
    #: Sized so two replicas take a burst of 10,000 released ahead before its instant.
    hold_ahead: int = Field(default=5_000, ge=0, le=100_000)
    max_response_bytes: int = Field(
        default=1024 * 1024, ge=1024, validation_alias="EXECUTOR_HTTP_MAX_RESPONSE_BYTES"
    )
    #: ``whsec_…`` secret(s), comma-separated, newest first; each request carries one signature
    #: per secret so receivers can rotate. Required in production.
    webhook_secret: SecretStr | None = Field(
        default=None, validation_alias="CHRONOFLOW_WEBHOOK_SECRET"
    )
    #: Fernet key(s) that open ``enc:v1:`` header values (the api's CHRONOFLOW_SECRETS_KEY).
    secrets_key: SecretStr | None = Field(default=None, validation_alias="CHRONOFLOW_SECRETS_KEY")
    #: The egress allowlist (chronoflow_egress.ALLOW_ENV_VAR); unset in development means
    #: loopback, and production refuses one.
    egress_allow: str | None = Field(default=None, validation_alias="CHRONOFLOW_EGRESS_ALLOW")

    @model_validator(mode="after")
    def _signing_secrets_are_usable(self) -> ExecutorHttpSettings:
        secrets = _secret_list(self.webhook_secret)
        for secret in secrets:
            # Raises SignatureError (a ValueError) naming the format, never echoing the secret.
            secret_key(secret)
        if self.profile == "production" and not secrets:
            raise ValueError(
                "CHRONOFLOW_WEBHOOK_SECRET is required in the production profile "
                "(comma-separated whsec_… secrets; generate one with "
                "`python -c 'from chronoflow_egress.signing import generate_secret as g; "
                "print(g())'`)"
            )
        return self

    def webhook_secrets(self) -> list[str]:
        """The configured signing secrets, newest first (empty when unset)."""
        return _secret_list(self.webhook_secret)

    def methods(self) -> frozenset[str]:
        """``ALLOWED_METHODS`` as a set of upper-case names."""
        return frozenset(m.strip().upper() for m in self.allowed_methods.split(",") if m.strip())


def _secret_list(value: SecretStr | None) -> list[str]:
    if value is None:
        return []
    return [s.strip() for s in value.get_secret_value().split(",") if s.strip()]
