"""The gateway's Prometheus metrics (names and labels as listed in deploy/grafana/metrics.txt)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

#: ``outcome`` of a send that reached WhatsApp, or was answered from the record of sends.
SENT = "sent"
DEDUPLICATED = "deduplicated"


@dataclass(frozen=True)
class GatewayMetrics:
    """Sends by outcome, and each session's current status."""

    sends: Counter
    session_status: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> GatewayMetrics:
        """Create the metrics on a service's registry."""
        return cls(
            sends=Counter(
                "chronoflow_waha_sends",
                "Texts the gateway was asked to send, by outcome (sent, deduplicated, or why not)",
                ["outcome"],
                registry=registry,
            ),
            session_status=Gauge(
                "chronoflow_waha_session_status",
                "1 for each WAHA session's current status, 0 for its other known statuses",
                ["session", "status"],
                registry=registry,
            ),
        )
