"""deploy/compose.yaml: valid against the Compose Specification schema, and complete.

The schema is the one check-jsonschema vendors (no download at test time). Compose interpolates
``${VAR}`` before it validates, so the file is interpolated here the same way, with the values
of deploy/env.example.
"""

from __future__ import annotations

import json
import re
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "env.example"
SERVICES = sorted(p.parent.name for p in REPO.glob("services/*/pyproject.toml"))
#: Compose services that run ChronoFlow code (the projector runs from the api image).
CHRONOFLOW = [*SERVICES, "projector"]

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt} ...
_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")


def env_example() -> dict[str, str]:
    """The uncommented assignments of deploy/env.example."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def documented_variables() -> set[str]:
    """Every variable env.example names, set or commented out."""
    return set(re.findall(r"^#?\s?([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation of every string in the document."""
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if not isinstance(node, str):
        return node

    def substitute(m: re.Match[str]) -> str:
        name, op, arg = m.group("name"), m.group("op"), m.group("arg")
        value = env.get(name)
        if op in {":-", "-"}:
            return value if value or (op == "-" and value is not None) else arg
        if op in {":?", "?"}:
            assert value, f"${{{name}}} is required: {arg}"
            return value
        if op in {":+", "+"}:
            return arg if value else ""
        assert value is not None, f"${{{name}}} is unset and has no default"
        return value

    return _VAR.sub(substitute, node.replace("$$", "\0")).replace("\0", "$")


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def compose() -> dict[str, Any]:
    """The compose file as compose sees it after interpolation with env.example."""
    result = interpolate(load_compose(), env_example())
    assert isinstance(result, dict)
    return result


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (a ./path or a named volume) of the short volume syntax."""
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}


def test_valid_against_the_compose_spec_schema() -> None:
    schema_file = files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(compose())
    ]
    assert not errors, "\n".join(errors)


def strings(node: Any) -> list[str]:
    """Every string value (and key) in a loaded document: what compose interpolates."""
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return [node] if isinstance(node, str) else []


def test_every_variable_is_documented_and_well_formed() -> None:
    text = "\n".join(strings(load_compose()))
    assert "${" not in _VAR.sub("", text), "a ${…} compose cannot parse (nested or malformed)"
    used = {m.group("name") for m in _VAR.finditer(text)}
    missing = used - documented_variables()
    assert not missing, f"not in deploy/env.example: {sorted(missing)}"
    required = {m.group("name") for m in _VAR.finditer(text) if m.group("op") in {":?", "?"}}
    assert required <= set(env_example()), "env.example sets every required variable"


def test_every_service_runs_from_its_dockerfile() -> None:
    services = compose()["services"]
    for name in SERVICES:
        assert name in services, f"no compose service for {name}"
        build = services[name]["build"]
        assert (DEPLOY / build["context"]).resolve() == REPO
        assert build["dockerfile"] == f"services/{name}/Dockerfile"


def test_projector_runs_from_the_api_image() -> None:
    services = compose()["services"]
    projector, api = services["projector"], services["api"]
    assert projector["image"] == api["image"]
    assert projector["command"] == ["chronoflow-projector"]
    scripts = tomllib.loads((REPO / "services/api/pyproject.toml").read_text())["project"]
    assert "chronoflow-projector" in scripts["scripts"]


def test_migrations_run_once_before_the_services_that_use_the_database() -> None:
    services = compose()["services"]
    migrate = services["migrate"]
    assert migrate["image"] == services["api"]["image"]
    assert migrate["restart"] == "no"
    assert migrate["command"] == ["chronoflow-api", "migrate"]
    for name in CHRONOFLOW:
        if "DATABASE_URL" in environment(services[name]):
            depends = services[name]["depends_on"]
            assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_nats_runs_jetstream_with_fsync_always_on_a_volume() -> None:
    services = compose()["services"]
    nats = services["nats"]
    assert str(nats["image"]).startswith("nats:")
    config_arg = nats["command"][nats["command"].index("--config") + 1]
    conf = (DEPLOY / mounts(nats)[config_arg]).read_text()
    jetstream = re.search(r"jetstream\s*\{(?P<body>[^}]*)\}", conf)
    assert jetstream, "nats.conf has a jetstream block"
    body = jetstream.group("body")
    assert re.search(r"^\s*sync_interval:\s*always\s*$", body, re.MULTILINE)
    store_dir = re.search(r"^\s*store_dir:\s*(\S+)\s*$", body, re.MULTILINE)
    assert store_dir, "JetStream has an explicit store_dir"
    named = {t: s for t, s in mounts(nats).items() if not s.startswith((".", "/"))}
    assert any(store_dir.group(1).startswith(f"{target}/") for target in named), (
        "the JetStream store is on a named volume"
    )
    assert set(named.values()) <= set(compose()["volumes"])


def test_infrastructure_is_present() -> None:
    services = compose()["services"]
    assert str(services["postgres"]["image"]).startswith("postgres:")
    assert any(":/var/lib/postgresql" in v for v in services["postgres"]["volumes"])
    assert str(services["waha"]["image"]).startswith("devlikeapro/waha:")
    assert str(services["prometheus"]["image"]).startswith("prom/prometheus:")
    assert str(services["grafana"]["image"]).startswith("grafana/grafana:")
    hook = environment(services["waha"])["WHATSAPP_HOOK_URL"]
    assert hook.startswith("http://waha-gateway:8005/")
    assert environment(services["waha-gateway"])["WAHA_BASE_URL"] == "http://waha:3000"


@pytest.mark.parametrize("service", sorted(load_compose()["services"]))
def test_bind_mounts_exist(service: str) -> None:
    for source in mounts(compose()["services"][service]).values():
        if source.startswith("."):
            assert (DEPLOY / source).exists(), f"{service} mounts missing {source}"


def test_prometheus_scrapes_every_chronoflow_service_on_its_port() -> None:
    services = compose()["services"]
    prometheus = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "chronoflow")
    assert job["metrics_path"] == "/metrics"
    scraped = {
        group["labels"]["service"]: target
        for group in job["static_configs"]
        for target in group["targets"]
    }
    assert set(scraped) == set(CHRONOFLOW)
    for name, target in scraped.items():
        host, port = target.split(":")
        assert host == name
        assert environment(services[name])["HTTP_PORT"] == port


def test_grafana_mounts_the_provisioning_and_the_dashboards() -> None:
    grafana = compose()["services"]["grafana"]
    mounted = mounts(grafana)
    provisioning = (DEPLOY / mounted["/etc/grafana/provisioning"]).resolve()
    assert provisioning == DEPLOY / "grafana/provisioning"
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/chronoflow.yaml").read_text()
    )["providers"][0]
    dashboards = DEPLOY / mounted[provider["options"]["path"]]
    assert list(dashboards.glob("*.json")), "the provider's folder holds the dashboards"
    home = environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (dashboards / Path(home).name).is_file()
