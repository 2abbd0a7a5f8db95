"""Prometheus counters for the egress guard, registered on a registry the caller owns."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from chronoflow_egress.decision import BlockReason


class EgressMetrics:
    """``chronoflow_egress_blocked_total{reason}``: requests refused by the egress policy."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.blocked = Counter(
            "chronoflow_egress_blocked",
            "Outgoing requests refused by the egress policy, by reason",
            ["reason"],
            registry=registry,
        )
        # Every reason exists at zero from the start, so dashboards and alerts see the series.
        for reason in BlockReason:
            self.blocked.labels(reason=reason.value)

    def record_blocked(self, reason: BlockReason) -> None:
        self.blocked.labels(reason=reason.value).inc()
