"""Settings: the env allowlist refuses ChronoFlow's own secrets; the cache lives under /tmp."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from chronoflow_executor_function.settings import ExecutorFunctionSettings


def test_defaults() -> None:
    settings = ExecutorFunctionSettings.model_validate({})
    assert settings.http_port == 8004
    assert settings.pool_size == 4
    assert settings.cache_dir == Path(tempfile.gettempdir()) / "chronoflow-function-cache"
    assert settings.env_names() == ()


def test_env_allowlist_is_split_and_deduplicated() -> None:
    settings = ExecutorFunctionSettings.model_validate(
        {"FUNCTION_ENV_ALLOWLIST": " API_BASE, TENANT ,API_BASE,"}
    )
    assert settings.env_names() == ("API_BASE", "TENANT")


@pytest.mark.parametrize("name", ["DATABASE_URL", "CHRONOFLOW_SECRETS_KEY", "waha_api_key"])
def test_env_allowlist_refuses_chronoflow_secrets(name: str) -> None:
    with pytest.raises(ValidationError, match="cannot be exposed to functions"):
        ExecutorFunctionSettings.model_validate({"FUNCTION_ENV_ALLOWLIST": f"OK,{name}"})


def test_env_allowlist_refuses_non_names() -> None:
    with pytest.raises(ValidationError, match="is not a variable name"):
        ExecutorFunctionSettings.model_validate({"FUNCTION_ENV_ALLOWLIST": "A B"})


def test_pool_size_is_bounded() -> None:
    with pytest.raises(ValidationError):
        ExecutorFunctionSettings.model_validate({"FUNCTION_POOL_SIZE": "0"})
