"""docs/operations.md covers what an operator needs, and names only files that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OPERATIONS = REPO / "docs/operations.md"
DOCS = [OPERATIONS, REPO / "docs/configuration.md"]
#: Files the docs tell the operator to create.
CREATED_BY_OPERATOR = {"deploy/.env"}
SERVICES = sorted(p.parent.name for p in REPO.glob("services/*/pyproject.toml"))


def section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(?P<body>.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"operations.md has no '## {heading}' section"
    return match.group("body")


def test_operations_covers_deployment_scaling_backups_and_rebuild() -> None:
    text = OPERATIONS.read_text()
    assert "docker compose -f deploy/compose.yaml up" in section(text, "Docker Compose (one host)")
    kubernetes = section(text, "Kubernetes")
    assert "kubectl apply -k" in kubernetes
    assert "helm upgrade --install nats nats/nats" in kubernetes
    scaling = section(text, "Scaling each service out")
    for name in [*SERVICES, "projector", "NATS", "PostgreSQL"]:
        assert f"**{name}**" in scaling, f"no scaling advice for {name}"
    backups = section(text, "Backups")
    for stream in ("CF_EVENTS", "CF_RUNS"):
        assert f"nats stream backup {stream}" in backups
    assert "nats stream restore" in backups
    assert "pg_dump" in backups
    assert "pg_restore" in backups
    rebuild = section(text, "Rebuilding the projections")
    assert "chronoflow-projector rebuild" in rebuild


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_named_repository_files_exist(doc: Path) -> None:
    for path in set(re.findall(r"`((?:deploy|services|tools|docs)/[\w./<>-]+)`", doc.read_text())):
        if "<" in path or path in CREATED_BY_OPERATOR:
            continue
        assert (REPO / path).exists(), f"{doc.name} names {path}, which does not exist"
