"""The metrics every executor exposes, labelled by ``target``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from chronoflow_contracts.names import TargetKind
from chronoflow_contracts.runs import RunStatus

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


@dataclass(frozen=True)
class RunMetrics:
    """``chronoflow_runs_total``, ``chronoflow_run_duration_seconds``,
    ``chronoflow_run_retries_total`` and ``chronoflow_executor_held_runs`` of one target.

    Label lookups cost more than the increments themselves at thousands of runs per second, so
    the children of this target are bound once (``target_duration``, ``target_retries``,
    :meth:`run`).
    """

    target: TargetKind
    runs: Counter
    duration: Histogram
    retries: Counter
    held: Gauge
    target_duration: Histogram = field(init=False)
    target_retries: Counter = field(init=False)
    target_held: Gauge = field(init=False)
    _by_status: dict[str, Counter] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        bind = object.__setattr__  # frozen: bound once, here
        bind(self, "target_duration", self.duration.labels(self.target))
        bind(self, "target_retries", self.retries.labels(self.target))
        bind(self, "target_held", self.held.labels(self.target))
        for status in (RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.TIMEOUT):
            self.run(status.value)

    def run(self, status: str) -> Counter:
        """The runs counter of one status (every final status exists from the start)."""
        child = self._by_status.get(status)
        if child is None:
            child = self._by_status[status] = self.runs.labels(self.target, status)
        return child

    def count_held(self, held: Callable[[], int]) -> None:
        """Report ``held()`` (the consumer's runs held until due) on every scrape."""
        self.target_held.set_function(held)

    @classmethod
    def register(
        cls,
        registry: CollectorRegistry,
        target: TargetKind,
        *,
        duration_help: str,
        buckets: Sequence[float] = DURATION_BUCKETS,
    ) -> RunMetrics:
        """Create the four metrics on a service's registry."""
        return cls(
            target=target,
            runs=Counter(
                "chronoflow_runs",
                "Attempts finished, by target and status",
                ["target", "status"],
                registry=registry,
            ),
            duration=Histogram(
                "chronoflow_run_duration_seconds",
                duration_help,
                ["target"],
                buckets=buckets,
                registry=registry,
            ),
            retries=Counter(
                "chronoflow_run_retries",
                "Further attempts scheduled after a failed one",
                ["target"],
                registry=registry,
            ),
            held=Gauge(
                "chronoflow_executor_held_runs",
                "Runs released ahead of their instant this replica holds until they are due",
                ["target"],
                registry=registry,
            ),
        )
