"""deploy/k8s: the kustomize base validates against the Kubernetes schemas, offline.

Every manifest is checked with kubernetes-validate (the Kubernetes OpenAPI schemas as JSON
Schema, shipped in the wheel) in strict mode, so an unknown or misspelt field fails. When
``kubectl`` is installed, the base is also rendered with ``kubectl kustomize`` and the rendered
objects are validated the same way.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy/k8s"
SERVICES = sorted(p.parent.name for p in REPO.glob("services/*/pyproject.toml"))
#: Deployments that run ChronoFlow code (the projector runs from the api image).
CHRONOFLOW = [*SERVICES, "projector"]
#: The oldest Kubernetes minor the base targets, and the newest the validator knows.
KUBERNETES_VERSIONS = ["1.30", kubernetes_validate.latest_version()]


@cache
def kustomization() -> dict[str, Any]:
    data = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert isinstance(data, dict)
    return data


@cache
def base_objects() -> tuple[dict[str, Any], ...]:
    """The base's objects as kustomize would emit them, for what this test relies on."""
    objects = []
    for resource in kustomization()["resources"]:
        for doc in yaml.safe_load_all((K8S / resource).read_text()):
            if doc:
                if doc["kind"] != "Namespace":
                    doc["metadata"]["namespace"] = kustomization()["namespace"]
                objects.append(doc)
    return tuple(objects)


def objects_of(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in base_objects() if o["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def secret_keys() -> set[str]:
    text = (K8S / "secrets.example.env").read_text()
    return {
        line.split("=", 1)[0]
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    }


def validate(obj: dict[str, Any], version: str) -> None:
    name = f"{obj['kind']}/{obj['metadata']['name']}"
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(map(str, exc.absolute_path))
        pytest.fail(f"{name} (Kubernetes {version}): {path}: {exc.message}")
    except kubernetes_validate.SchemaNotFoundError as exc:
        pytest.fail(f"{name}: {exc.message}")


def test_kustomization_lists_every_manifest() -> None:
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization()["resources"]) == on_disk
    assert kustomization()["kind"] == "Kustomization"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_valid_against_kubernetes_schemas(version: str) -> None:
    for obj in base_objects():
        validate(obj, version)


def test_rendered_base_is_valid() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the manifests are validated one by one above")
    result = subprocess.run(  # noqa: S603 - kubectl renders a directory of this repository
        [kubectl, "kustomize", str(K8S)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert len(rendered) == len(base_objects())
    images = {i["name"] for i in kustomization()["images"]}
    for obj in rendered:
        validate(obj, KUBERNETES_VERSIONS[-1])
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == kustomization()["namespace"]
        for c in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            name, _, tag = c["image"].rpartition(":")
            assert name in images, f"{c['image']} has no entry in the kustomization's images"
            assert tag, f"{c['image']} has no tag after rendering"


@pytest.mark.parametrize("name", CHRONOFLOW)
def test_deployment_probes_resources_and_security(name: str) -> None:
    deployments = objects_of("Deployment")
    assert name in deployments, f"no Deployment for {name}"
    deployment = deployments[name]
    pod = deployment["spec"]["template"]["spec"]
    main = container(deployment)
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert env["HTTP_PORT"] == str(ports["http"]), "the service listens on the declared port"

    assert main["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}

    for c in [*pod.get("initContainers", []), main]:
        resources = c["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), c["name"]
        assert "memory" in resources["limits"], c["name"]
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001, "the images' USER"

    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ports["http"])
    assert annotations["prometheus.io/path"] == "/metrics"

    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("name", CHRONOFLOW)
def test_deployment_image_and_command(name: str) -> None:
    main = container(objects_of("Deployment")[name])
    image_service = "api" if name == "projector" else name
    assert main["image"] == f"chronoflow/{image_service}"
    if name == "projector":
        assert main["command"] == ["chronoflow-projector"]
    else:
        assert "command" not in main, "the image's CMD starts the service"


def test_config_comes_from_configmaps_and_secrets() -> None:
    configmaps = objects_of("ConfigMap")
    keys = secret_keys()
    for name in CHRONOFLOW:
        pod = objects_of("Deployment")[name]["spec"]["template"]["spec"]
        assert {"name": "chronoflow-common"} in [
            s["configMapRef"] for s in container(objects_of("Deployment")[name])["envFrom"]
        ]
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            for source in c.get("envFrom", []):
                assert set(source) == {"configMapRef"}, "whole Secrets are never injected"
                assert source["configMapRef"]["name"] in configmaps
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "chronoflow-secrets"
                    assert ref["key"] in keys, f"{ref['key']} is not in secrets.example.env"
    assert "Secret" not in {o["kind"] for o in base_objects()}, "no placeholder Secret ships"
    assert container(objects_of("Deployment")["api"])["env"]
    migrate = objects_of("Deployment")["api"]["spec"]["template"]["spec"]["initContainers"][0]
    assert migrate["image"] == container(objects_of("Deployment")["api"])["image"]
    assert migrate["command"] == ["chronoflow-api", "migrate"]


def test_waha_gateway_runs_alone() -> None:
    # Per-session pacing lives in the gateway's process: two replicas would double the rate.
    gateway = objects_of("Deployment")["waha-gateway"]
    assert gateway["spec"]["replicas"] == 1
    assert gateway["spec"]["strategy"] == {"type": "Recreate"}


def test_nats_helm_values_describe_a_jetstream_cluster_of_three() -> None:
    values = yaml.safe_load((K8S / "nats/values.yaml").read_text())
    config = values["config"]
    assert config["cluster"]["enabled"] is True
    assert config["cluster"]["replicas"] == 3
    jetstream = config["jetstream"]
    assert jetstream["enabled"] is True
    assert jetstream["fileStore"]["enabled"] is True
    assert jetstream["fileStore"]["pvc"]["enabled"] is True
    assert jetstream["merge"]["sync_interval"] == "always"
    tag = values["container"]["image"]["tag"]
    major, minor = (int(x) for x in tag.split("-")[0].split(".")[:2])
    assert (major, minor) >= (2, 12), "message schedules need nats-server 2.12+"
    common = objects_of("ConfigMap")["chronoflow-common"]["data"]
    assert common["NATS_URL"] == "nats://nats:4222", "the Service of the Helm release `nats`"
    assert common["NATS_STREAM_REPLICAS"] == str(config["cluster"]["replicas"])
    # Referenced, not vendored: no chart sources in the repository.
    assert not list(K8S.rglob("Chart.yaml"))
