"""The scheduler's Prometheus metrics (no chrono ids in labels: their number is unbounded)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from chronoflow_contracts.runs import SkipReason

#: Fine at the bottom (the target is tens of milliseconds), coarse at the top (misfires).
LATENESS_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    3600.0,
)

#: Fired messages should arrive ``fire_lead_seconds`` early; negative means late.
ARRIVAL_BUCKETS = (-60.0, -10.0, -1.0, -0.1, 0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class Children:
    """The children of a one-label counter, each looked up once.

    ``labels()`` takes the metric's lock and builds a key tuple on every call (~2 us); the
    outcome of every fire and the action of every chrono event (a ChronoFinished follows
    each one-shot) would pay it two to three times per fire.
    """

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: Counter) -> None:
        self._metric = metric
        self._children: dict[str, Counter] = {}

    def __call__(self, value: str) -> Counter:
        """The child for ``value`` (created on first use, as ``labels()`` would)."""
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = self._metric.labels(value)
        return child


@dataclass(frozen=True)
class SchedulerMetrics:
    """What operators watch: lateness, outcomes, stale drops, errors, work in hand."""

    lateness: Histogram
    arrival_lead: Histogram
    fires: Counter
    skips: Counter
    stale: Counter
    publish_errors: Counter
    held: Gauge
    events: Counter
    reconcile_repairs: Counter
    reconcile_seconds: Gauge
    #: ``fires`` by outcome and ``events`` by action, for the per-fire paths.
    fire_outcome: Children = field(init=False, repr=False)
    event_action: Children = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fire_outcome", Children(self.fires))
        object.__setattr__(self, "event_action", Children(self.events))

    @classmethod
    def register(cls, registry: CollectorRegistry) -> SchedulerMetrics:
        """Create the metrics on a service's registry."""
        metrics = cls(
            lateness=Histogram(
                "chronoflow_schedule_fire_lateness_seconds",
                "Seconds between an occurrence's due instant and its RunRequested being stored",
                buckets=LATENESS_BUCKETS,
                registry=registry,
            ),
            arrival_lead=Histogram(
                "chronoflow_scheduler_fire_arrival_lead_seconds",
                "How long before its due instant a fired message reached the scheduler "
                "(negative: after; then the fire lead is too short for the load)",
                buckets=ARRIVAL_BUCKETS,
                registry=registry,
            ),
            fires=Counter(
                "chronoflow_scheduler_fires",
                "Fired schedule messages processed, by outcome (run, skipped, stale, finished)",
                ["outcome"],
                registry=registry,
            ),
            skips=Counter(
                "chronoflow_scheduler_skips",
                "Occurrences recorded as SKIPPED, by reason (coalesced ones counted each)",
                ["reason"],
                registry=registry,
            ),
            stale=Counter(
                "chronoflow_scheduler_stale_fires",
                "Fired schedules dropped because the chrono changed after they were armed",
                registry=registry,
            ),
            publish_errors=Counter(
                "chronoflow_scheduler_publish_errors",
                "Failed JetStream writes (the message is redelivered and retried)",
                ["kind"],
                registry=registry,
            ),
            held=Gauge(
                "chronoflow_scheduler_held_fires",
                "Fired messages held in this replica until their due instant",
                registry=registry,
            ),
            events=Counter(
                "chronoflow_scheduler_chrono_events",
                "Chrono events applied to the schedules, by action (armed, cancelled, ...)",
                ["action"],
                registry=registry,
            ),
            reconcile_repairs=Counter(
                "chronoflow_scheduler_reconcile_repairs",
                "Schedules the start-up reconcile re-armed or removed, by kind",
                ["kind"],
                registry=registry,
            ),
            reconcile_seconds=Gauge(
                "chronoflow_scheduler_reconcile_duration_seconds",
                "How long the last reconcile took, by pass (repair, sweep)",
                ["phase"],
                registry=registry,
            ),
        )
        # Every skip reason exists from the start at 0, so rate() and alerts see the first one.
        for reason in SkipReason:
            metrics.skips.labels(reason=reason.value)
        return metrics
