"""Every metric the executor registers is listed, with its type and labels, in metrics.txt."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from chronoflow_executor_function.metrics import ExecutorMetrics

METRICS_TXT = Path(__file__).resolve().parents[4] / "deploy/grafana/metrics.txt"


def listed() -> dict[str, tuple[str, frozenset[str], frozenset[str]]]:
    result = {}
    for line in METRICS_TXT.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, kind, labels, services = line.split()
            result[name] = (
                kind,
                frozenset() if labels == "-" else frozenset(labels.split(",")),
                frozenset(services.split(",")),
            )
    return result


def test_registered_metrics_are_listed_for_executor_function() -> None:
    registry = CollectorRegistry()
    ExecutorMetrics.register(registry)
    for family in registry.collect():
        exposed = f"{family.name}_total" if family.type == "counter" else family.name
        assert exposed in listed(), f"{exposed} is not in metrics.txt"
        kind, labels, services = listed()[exposed]
        assert kind == family.type
        found = {k for s in family.samples for k in s.labels if k != "le"}
        assert found == labels, exposed
        assert "executor-function" in services, exposed
