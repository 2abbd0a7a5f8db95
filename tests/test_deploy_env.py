"""The environment compose and Kubernetes give each service is what its settings class reads.

Every variable set for a ChronoFlow container must be a field of that service's settings class,
a standard OpenTelemetry variable, or one listed in PLANNED (documented as planned in
docs/configuration.md); the whole environment must validate with the settings class; and
docs/configuration.md must name every variable every settings class reads.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from chronoflow_api.settings import ApiSettings, ProjectorSettings
from chronoflow_egress.signing import generate_secret
from chronoflow_executor_function.settings import ExecutorFunctionSettings
from chronoflow_executor_http.settings import ExecutorHttpSettings
from chronoflow_executor_message.settings import ExecutorMessageSettings
from chronoflow_scheduler.settings import SchedulerSettings
from chronoflow_waha_gateway.settings import WahaGatewaySettings

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
CONFIGURATION = REPO / "docs/configuration.md"

#: The settings class of each ChronoFlow container (compose service or Kubernetes container).
SETTINGS: dict[str, type[BaseSettings]] = {
    "api": ApiSettings,
    "projector": ProjectorSettings,
    "scheduler": SchedulerSettings,
    "executor-http": ExecutorHttpSettings,
    "executor-message": ExecutorMessageSettings,
    "executor-function": ExecutorFunctionSettings,
    "waha-gateway": WahaGatewaySettings,
    # One-shot containers of the api image.
    "migrate": ApiSettings,
    "seed": ApiSettings,
}
#: Read by the OpenTelemetry SDK itself, not by a settings class (tracing: issue 9).
OTEL = {"OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"}
#: Set by the deployment for settings the services do not read yet. When a service implements
#: one, move it out of here and drop "planned" from its line in docs/configuration.md.
PLANNED: dict[str, set[str]] = {}


#: The example files hold CHANGE-ME where an operator puts a secret; these stand in for real
#: ones of the right form, so the settings' own format checks run.
PLACEHOLDER = "CHANGE-ME"
SECRET_SAMPLES = {
    "CHRONOFLOW_WEBHOOK_SECRET": generate_secret(),
    "CHRONOFLOW_SECRETS_KEY": Fernet.generate_key().decode(),
}


def filled(name: str, value: str) -> str:
    """A placeholder replaced by a well-formed sample secret (a random string if none)."""
    if PLACEHOLDER not in value:
        return value
    return SECRET_SAMPLES.get(name, value.replace(PLACEHOLDER, "0123456789abcdef"))


def aliases(settings: type[BaseSettings]) -> set[str]:
    """The environment variable names a settings class reads."""
    names: set[str] = set()
    for field in settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names.update(a for a in alias.choices if isinstance(a, str))
        else:
            pytest.fail(f"{settings.__name__}: a field without a plain environment name")
    return names


def check_environment(container: str, env: dict[str, str]) -> None:
    settings = SETTINGS[container]
    unknown = set(env) - aliases(settings) - OTEL - PLANNED.get(container, set())
    assert not unknown, f"{container}: {sorted(unknown)} are read by nothing"
    # The values must be acceptable too (types, ranges, the production profile's requirements).
    settings.model_validate(env)


@cache
def compose_services() -> dict[str, Any]:
    """deploy/compose.yaml's services, interpolated with deploy/env.example's values."""
    env = {}
    for line in (DEPLOY / "env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, raw = line.partition("=")
            env[key] = filled(key, raw)

    def substitute(m: re.Match[str]) -> str:
        return env.get(m.group(1)) or m.group(3) or ""

    text = re.sub(r"\$\{(\w+)(:?[-?+](.*?))?\}", substitute, (DEPLOY / "compose.yaml").read_text())
    services: dict[str, Any] = yaml.safe_load(text)["services"]
    return services


@cache
def k8s_objects() -> tuple[dict[str, Any], ...]:
    kustomization = yaml.safe_load((DEPLOY / "k8s/kustomization.yaml").read_text())
    return tuple(
        doc
        for resource in kustomization["resources"]
        for doc in yaml.safe_load_all((DEPLOY / "k8s" / resource).read_text())
        if doc
    )


def k8s_containers() -> dict[str, dict[str, str]]:
    """Each ChronoFlow container's environment: its ConfigMaps, values, and Secret keys."""
    configmaps = {
        o["metadata"]["name"]: o["data"] for o in k8s_objects() if o["kind"] == "ConfigMap"
    }
    secrets = {}
    for line in (DEPLOY / "k8s/secrets.example.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            secrets[key] = filled(key, value)
    result = {}
    for obj in k8s_objects():
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            env: dict[str, str] = {}
            for source in c.get("envFrom", []):
                env |= configmaps[source["configMapRef"]["name"]]
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                env[var["name"]] = secrets[ref["key"]] if ref else var["value"]
            result[c["name"]] = env
    return result


def chronoflow_compose_services() -> list[str]:
    return sorted(set(compose_services()) & set(SETTINGS))


@pytest.mark.parametrize("service", chronoflow_compose_services())
def test_compose_environment_is_read_by_the_service(service: str) -> None:
    env = compose_services()[service].get("environment", {})
    check_environment(service, {k: str(v) for k, v in env.items()})


@pytest.mark.parametrize("container", sorted(k8s_containers()))
def test_kubernetes_environment_is_read_by_the_service(container: str) -> None:
    check_environment(container, k8s_containers()[container])


def test_every_chronoflow_container_is_checked() -> None:
    chronoflow_images = {
        name
        for name, svc in compose_services().items()
        if str(svc.get("image", "")).startswith("${CHRONOFLOW") or "build" in svc
    }
    assert chronoflow_images == set(chronoflow_compose_services())
    deployments = {o["metadata"]["name"] for o in k8s_objects() if o["kind"] == "Deployment"}
    assert deployments <= set(k8s_containers())


@pytest.mark.parametrize("service", sorted(set(SETTINGS) - {"migrate", "seed"}))
def test_ports_are_the_settings_defaults(service: str) -> None:
    default = SETTINGS[service].model_fields["http_port"].default
    assert compose_services()[service]["environment"]["HTTP_PORT"] == str(default)
    assert k8s_containers()[service]["HTTP_PORT"] == str(default)
    dockerfile = REPO / "services" / service / "Dockerfile"
    if dockerfile.exists():
        assert re.search(rf"\bHTTP_PORT={default}\b", dockerfile.read_text())


def test_configuration_doc_names_every_variable() -> None:
    text = CONFIGURATION.read_text()
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", text))
    for settings in set(SETTINGS.values()):
        missing = aliases(settings) - documented
        assert not missing, f"docs/configuration.md lacks {sorted(missing)} ({settings.__name__})"
    assert documented >= OTEL


def test_planned_variables_are_marked_and_still_planned() -> None:
    lines = CONFIGURATION.read_text().splitlines()
    for service, planned in PLANNED.items():
        implemented = planned & aliases(SETTINGS[service])
        assert not implemented, f"{service} now reads {sorted(implemented)}: no longer planned"
        for name in planned:
            rows = [line for line in lines if f"`{name}`" in line]
            assert rows, f"docs/configuration.md does not document {name}"
            assert any("planned" in row.lower() for row in rows), f"{name} is not marked planned"
