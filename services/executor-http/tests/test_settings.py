"""Configuration: signing secrets by profile, the egress policy by profile, methods."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from chronoflow_egress import EgressConfigError, egress_policy
from chronoflow_egress.signing import generate_secret
from chronoflow_executor_http.app import signing_secrets
from chronoflow_executor_http.settings import ExecutorHttpSettings


def settings(**env: str) -> ExecutorHttpSettings:
    return ExecutorHttpSettings.model_validate(env)


def test_production_requires_a_webhook_secret() -> None:
    with pytest.raises(ValidationError, match="CHRONOFLOW_WEBHOOK_SECRET is required"):
        settings(CHRONOFLOW_PROFILE="production")
    with pytest.raises(ValidationError, match="CHRONOFLOW_WEBHOOK_SECRET is required"):
        settings(CHRONOFLOW_PROFILE="production", CHRONOFLOW_WEBHOOK_SECRET=" , ")


def test_a_malformed_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as caught:
        settings(CHRONOFLOW_WEBHOOK_SECRET="whsec_not*base64!")
    assert "not*base64" not in str(caught.value)
    assert "whsec_ followed by base64" in str(caught.value)


def test_secrets_are_comma_separated_newest_first() -> None:
    new, old = generate_secret(), generate_secret()
    configured = settings(
        CHRONOFLOW_PROFILE="production", CHRONOFLOW_WEBHOOK_SECRET=f"{new}, {old}"
    )
    assert signing_secrets(configured) == [new, old]
    assert new not in repr(configured)  # a SecretStr: never printed


def test_development_generates_a_secret_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        secrets = signing_secrets(settings(CHRONOFLOW_PROFILE="development"))
    [secret] = secrets
    assert secret.startswith("whsec_")
    assert "CHRONOFLOW_WEBHOOK_SECRET is not set" in caplog.text
    assert secret not in caplog.text


def test_development_allowlists_loopback_by_default() -> None:
    policy = egress_policy(settings(CHRONOFLOW_PROFILE="development"))
    assert [str(e) for e in policy.allow] == ["127.0.0.0/8", "::1/128", "localhost"]
    explicit = egress_policy(
        settings(CHRONOFLOW_PROFILE="development", CHRONOFLOW_EGRESS_ALLOW="sink.test:9000")
    )
    assert [str(e) for e in explicit.allow] == ["sink.test:9000"]
    # An empty value switches the allowlist off in development too.
    assert (
        egress_policy(settings(CHRONOFLOW_PROFILE="development", CHRONOFLOW_EGRESS_ALLOW="")).allow
        == ()
    )


def test_production_refuses_an_allowlist() -> None:
    secret = generate_secret()
    production = settings(CHRONOFLOW_PROFILE="production", CHRONOFLOW_WEBHOOK_SECRET=secret)
    assert egress_policy(production).allow == ()
    with pytest.raises(EgressConfigError, match="production refuses one"):
        egress_policy(
            settings(
                CHRONOFLOW_PROFILE="production",
                CHRONOFLOW_WEBHOOK_SECRET=secret,
                CHRONOFLOW_EGRESS_ALLOW="127.0.0.1",
            )
        )


def test_methods_and_limits() -> None:
    configured = settings(
        CHRONOFLOW_PROFILE="development",
        ALLOWED_METHODS="get, Post ,",
        HTTP_REQUEST_TIMEOUT_MS="2500",
    )
    assert configured.methods() == frozenset({"GET", "POST"})
    assert configured.request_timeout_ms == 2500
    with pytest.raises(ValidationError):
        settings(CHRONOFLOW_PROFILE="development", EXECUTOR_HTTP_ACK_WAIT_SECONDS="1")


def test_hold_ahead_reaches_the_consumer_and_is_bounded() -> None:
    dev = {"CHRONOFLOW_PROFILE": "development"}
    assert settings(**dev).consumer_options(200).hold_ahead == 5_000
    assert settings(**dev, EXECUTOR_HTTP_HOLD_AHEAD="0").consumer_options(200).hold_ahead == 0
    with pytest.raises(ValidationError, match="EXECUTOR_HTTP_HOLD_AHEAD"):
        settings(**dev, EXECUTOR_HTTP_HOLD_AHEAD="-1")
