"""The Grafana dashboard queries only metrics the services export, with their real labels.

deploy/grafana/metrics.txt is the one list of ChronoFlow's metrics (name, type, labels). Every
metric a panel queries must be in it, every label a query selects or groups by must be one of
that metric's labels, and label values that name things (consumers, targets, statuses,
streams) must be names the code uses. The metrics the services already register are checked
against the list too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from chronoflow_api.projector.consumer import ProjectorMetrics
from chronoflow_contracts import names
from chronoflow_contracts.runs import RunStatus
from chronoflow_egress.metrics import EgressMetrics
from chronoflow_executor_function.metrics import ExecutorMetrics as FunctionMetrics
from chronoflow_executor_http.metrics import ExecutorMetrics
from chronoflow_executor_message.metrics import ExecutorMetrics as MessageMetrics
from chronoflow_platform.consumer_metrics import ConsumerBacklog
from chronoflow_platform.service import RequestMetrics
from chronoflow_scheduler.metrics import SchedulerMetrics
from chronoflow_waha_gateway.metrics import GatewayMetrics

REPO = Path(__file__).resolve().parents[1]
GRAFANA = REPO / "deploy/grafana"
DASHBOARD = GRAFANA / "dashboards/chronoflow-overview.json"
#: Labels Prometheus adds when it scrapes (deploy/prometheus/prometheus.yml sets `service`).
SCRAPE_LABELS = {"job", "instance", "service"}
#: Labels that would carry one series per chrono, run or channel: never allowed.
UNBOUNDED = {"id", "chrono_id", "run_id", "channel_id", "function_id", "url", "path", "chat_id"}
TYPES = {"counter", "gauge", "histogram"}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


@dataclass(frozen=True)
class Metric:
    """One line of metrics.txt."""

    name: str
    type: str
    labels: frozenset[str]
    services: frozenset[str]


@cache
def metrics() -> dict[str, Metric]:
    result: dict[str, Metric] = {}
    for line in (GRAFANA / "metrics.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, kind, labels, services = line.split()
        assert name not in result, f"{name} is listed twice"
        result[name] = Metric(
            name=name,
            type=kind,
            labels=frozenset() if labels == "-" else frozenset(labels.split(",")),
            services=frozenset(services.split(",")),
        )
    return result


@cache
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels() -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        result.append(panel)
        result.extend(panel.get("panels", []))  # a collapsed row keeps its panels inside
    return result


def queries() -> list[tuple[str, str]]:
    """(panel title, PromQL expression) of every query of every panel."""
    return [(p["title"], t["expr"]) for p in panels() for t in p.get("targets", [])]


def series_metric(series: str) -> Metric:
    """The listed metric behind a series name (histograms expose _bucket, _sum, _count)."""
    if series in metrics():
        return metrics()[series]
    for suffix in HISTOGRAM_SERIES:
        base = series.removesuffix(suffix)
        if base != series and base in metrics() and metrics()[base].type == "histogram":
            return metrics()[base]
    pytest.fail(f"{series} is not in deploy/grafana/metrics.txt")


_SELECTOR = re.compile(r"\b(?P<series>chronoflow_[a-z0-9_]+)(?:\{(?P<matchers>[^}]*)\})?")
_MATCHER = re.compile(r'(?P<label>[a-zA-Z_]\w*)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>[^"]*)"')
_GROUPING = re.compile(r"\b(?:by|without)\s*\((?P<labels>[^)]*)\)")


def test_metrics_list_is_well_formed() -> None:
    assert metrics()
    for metric in metrics().values():
        assert metric.type in TYPES, metric.name
        assert metric.name.startswith("chronoflow_")
        assert re.fullmatch(r"[a-z][a-z0-9_]*", metric.name)
        if metric.type == "counter":
            assert metric.name.endswith("_total"), f"{metric.name}: counters end in _total"
        else:
            assert not metric.name.endswith("_total"), f"{metric.name}: only counters are totals"
        if metric.type == "histogram":
            assert metric.name.endswith("_seconds"), f"{metric.name}: a base unit"
        assert not metric.labels & UNBOUNDED, f"{metric.name}: unbounded labels"
        assert "le" not in metric.labels


def test_every_queried_metric_is_listed_with_its_labels() -> None:
    assert queries()
    for title, expr in queries():
        used = [series_metric(m.group("series")) for m in _SELECTOR.finditer(expr)]
        assert used, f"{title}: `{expr}` queries no ChronoFlow metric"
        allowed = set(SCRAPE_LABELS)
        for m, metric in zip(_SELECTOR.finditer(expr), used, strict=True):
            allowed |= metric.labels | ({"le"} if metric.type == "histogram" else set())
            for matcher in _MATCHER.finditer(m.group("matchers") or ""):
                label = matcher.group("label")
                assert label in metric.labels | SCRAPE_LABELS, f"{title}: {metric.name}{{{label}}}"
        for grouping in _GROUPING.finditer(expr):
            for label in filter(None, (x.strip() for x in grouping.group("labels").split(","))):
                assert label in allowed, f"{title}: grouping by unknown label {label}"
        if "histogram_quantile" in expr:
            assert "_bucket" in expr, title
            assert re.search(r"\bby\s*\([^)]*\ble\b", expr), f"{title}: quantile without le"
        if re.search(r"\b(rate|increase)\(", expr):
            for metric in used:
                assert metric.type != "gauge", f"{title}: rate() of the gauge {metric.name}"


def test_label_values_name_real_things() -> None:
    known: dict[str, set[str]] = {
        "consumer": {
            names.PROJECTOR_DURABLE,
            names.SCHEDULER_FIRE_DURABLE,
            names.SCHEDULER_EVENTS_DURABLE,
            *names.EXECUTOR_DURABLES.values(),
        },
        "target": set(names.EXECUTOR_DURABLES),
        "status": {s.value for s in RunStatus},
        "stream": {
            names.EVENTS_STREAM,
            names.RUNS_STREAM,
            names.WORK_STREAM,
            names.SCHEDULES_STREAM,
        },
        "service": {
            *(p.parent.name for p in REPO.glob("services/*/pyproject.toml")),
            "projector",
        },
    }
    for title, expr in queries():
        for matcher in _MATCHER.finditer(expr):
            label, value = matcher.group("label"), matcher.group("value")
            if label not in known:
                continue
            values = value.split("|") if matcher.group("op") in {"=~", "!~"} else [value]
            unknown = set(values) - known[label]
            assert not unknown, f"{title}: {label} values {sorted(unknown)} name nothing"


def test_overview_and_one_row_per_executor() -> None:
    rows = [p for p in dashboard()["panels"] if p["type"] == "row"]
    assert rows[0]["title"] == "Overview"
    overview: list[str] = []
    by_row: dict[str, list[str]] = {}
    current = None
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
            by_row[current] = []
            continue
        assert current is not None, "every panel sits under a row"
        by_row[current].extend(t["expr"] for t in panel.get("targets", []))
    overview = by_row["Overview"]
    joined = "\n".join(overview)
    for needed in (
        "histogram_quantile(0.5, sum by (le) (rate(chronoflow_schedule_fire_lateness_seconds",
        "histogram_quantile(0.99, sum by (le) (rate(chronoflow_schedule_fire_lateness_seconds",
        "sum by (status) (rate(chronoflow_runs_total",
        'chronoflow_runs_total{status=~"FAILED|TIMEOUT"}',
        "chronoflow_consumer_pending_messages",
        "chronoflow_projector_lag_seconds",
    ):
        assert needed in joined, f"the overview lacks {needed}"
    for target, durable in names.EXECUTOR_DURABLES.items():
        row = next(t for t in by_row if t.lower().endswith(target))
        exprs = by_row[row]
        assert exprs, row
        assert any(f'target="{target}"' in e for e in exprs)
        assert any(f'consumer="{durable}"' in e for e in exprs)


def test_panels_use_the_datasource_variable() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels():
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]


def test_provisioning_matches_the_dashboard() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning/datasources/prometheus.yaml").read_text()
    )["datasources"]
    prometheus = next(d for d in datasources if d["type"] == "prometheus")
    current = dashboard()["templating"]["list"][0]["current"]
    assert current["value"] == prometheus["uid"]
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/chronoflow.yaml").read_text())
    assert providers["apiVersion"] == 1
    assert providers["providers"][0]["type"] == "file"
    assert dashboard()["uid"] == "chronoflow-overview"


def _registered(registry: CollectorRegistry) -> dict[str, tuple[str, frozenset[str]]]:
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for family in registry.collect():
        exposed = f"{family.name}_total" if family.type == "counter" else family.name
        labels = {label for sample in family.samples for label in sample.labels if label != "le"}
        found[exposed] = (family.type, frozenset(labels))
    return found


def _label_names(registry: CollectorRegistry) -> dict[str, frozenset[str]]:
    # A labelled metric with no child yet exposes no sample; its declared labels still count.
    declared: dict[str, frozenset[str]] = {}
    for collector in list(registry._collector_to_names):
        if isinstance(collector, MetricWrapperBase):
            for name in registry._collector_to_names[collector]:
                declared[name] = frozenset(collector._labelnames)
    return declared


def _service_registries() -> dict[str, CollectorRegistry]:
    """Per service, a registry holding what the service registers (its metric classes)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        """An ASGI app that is never called."""

    registries: dict[str, CollectorRegistry] = {}
    register: dict[str, list[Callable[[CollectorRegistry], object]]] = {
        "api": [],
        "projector": [ProjectorMetrics.register, ConsumerBacklog.register],
        "scheduler": [SchedulerMetrics.register, ConsumerBacklog.register],
        "executor-http": [ExecutorMetrics.register, EgressMetrics, ConsumerBacklog.register],
        "executor-message": [MessageMetrics.register, ConsumerBacklog.register],
        "executor-function": [FunctionMetrics.register, EgressMetrics, ConsumerBacklog.register],
        "waha-gateway": [GatewayMetrics.register],
    }
    for service, calls in register.items():
        registry = registries[service] = CollectorRegistry()
        RequestMetrics(app, registry=registry)
        for call in calls:
            call(registry)
    return registries


def test_registered_metrics_are_listed() -> None:
    for service, registry in _service_registries().items():
        declared = _label_names(registry)
        for name, (kind, _) in _registered(registry).items():
            assert name in metrics(), f"{service} exports {name}, which is not in metrics.txt"
            listed = metrics()[name]
            assert service in listed.services, f"metrics.txt does not list {service} for {name}"
            assert listed.type == kind, f"{name}: listed as {listed.type}, registered as {kind}"
            labels = declared.get(name, declared.get(name.removesuffix("_total"), frozenset()))
            assert listed.labels == labels, f"{name}: labels {sorted(labels)} in the code"


def test_listed_metrics_are_registered() -> None:
    registered = {
        service: set(_registered(registry)) for service, registry in _service_registries().items()
    }
    for metric in metrics().values():
        for service in metric.services:
            assert metric.name in registered[service], f"{service} does not export {metric.name}"
