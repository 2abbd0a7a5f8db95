"""The backlog of a service's JetStream consumers as Prometheus gauges, one way for every service.

``chronoflow_consumer_pending_messages`` (messages in the stream the durable has not delivered
yet) and ``chronoflow_consumer_ack_pending_messages`` (delivered, not acknowledged yet), by
stream and durable name: the labels are the service's fixed list of durables, never anything a
user creates. A background loop asks the server for each durable's info every few seconds; a
scrape reads the last answer, so scraping costs no NATS round trip. A durable the server does
not know (not created yet, or being re-created) is not reported rather than reported stale.

A service hooks it in with one line in its startup: ``watch_consumers(runtime, (stream,
durable), ...)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry, Gauge

from chronoflow_platform.service import Runtime

log = logging.getLogger(__name__)

#: How often each durable's info is asked for (a scrape every 15 s sees a fresh sample).
PERIOD_S = 5.0
#: One answer may take this long before the sample is skipped (the loop must keep its pace).
TIMEOUT_S = 2.0

#: A durable consumer: (stream, durable name).
Durable = tuple[str, str]


@dataclass(frozen=True)
class ConsumerBacklog:
    """The two gauges, and how to fill them from the server."""

    pending: Gauge
    ack_pending: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> ConsumerBacklog:
        """Create the gauges on a service's registry."""
        return cls(
            pending=Gauge(
                "chronoflow_consumer_pending_messages",
                "Messages in the stream the durable consumer has not delivered yet",
                ["stream", "consumer"],
                registry=registry,
            ),
            ack_pending=Gauge(
                "chronoflow_consumer_ack_pending_messages",
                "Messages delivered to the durable consumer and not acknowledged yet",
                ["stream", "consumer"],
                registry=registry,
            ),
        )

    async def sample(self, js: JetStreamContext, durables: Sequence[Durable]) -> None:
        """Ask for each durable's numbers once and set the gauges."""
        for stream, durable in durables:
            try:
                info = await js.consumer_info(stream, durable, timeout=TIMEOUT_S)
            except NotFoundError:
                self._forget(stream, durable)
            except Exception as exc:  # a metric sample must never stop the service
                log.debug("consumer info of %s/%s unavailable: %s", stream, durable, exc)
                self._forget(stream, durable)
            else:
                self.pending.labels(stream, durable).set(info.num_pending or 0)
                self.ack_pending.labels(stream, durable).set(info.num_ack_pending or 0)

    async def watch(
        self, js: JetStreamContext, durables: Sequence[Durable], *, period: float = PERIOD_S
    ) -> None:
        """Sample every ``period`` seconds until cancelled."""
        while True:
            await self.sample(js, durables)
            await asyncio.sleep(period)

    def _forget(self, stream: str, durable: str) -> None:
        for gauge in (self.pending, self.ack_pending):
            with contextlib.suppress(KeyError):  # never reported: nothing to take back
                gauge.remove(stream, durable)


def watch_consumers(runtime: Runtime, *durables: Durable) -> ConsumerBacklog:
    """Export the backlog of ``durables`` from this service, kept current for its lifetime."""
    backlog = ConsumerBacklog.register(runtime.registry)
    runtime.spawn(backlog.watch(runtime.js, durables), name="consumer-backlog")
    return backlog
