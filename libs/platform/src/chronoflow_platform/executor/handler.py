"""The subscriber skeleton: decode a RunRequested from a work queue, run it, settle the message.

A run never starts before its ``scheduledFor``: the scheduler puts occurrences in the work
queue a little ahead of their instant (``SCHEDULER_RELEASE_AHEAD_SECONDS``), and the consumer
holds such a run (decoded on arrival) until the instant. A message is acknowledged only after
the attempt's RunCompleted (and any retry) is stored, so a crash at any point means a
redelivery, never a lost run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from nats.aio.msg import Msg
from pydantic import ValidationError

from chronoflow_contracts import Event, UnknownEventError, decode, names
from chronoflow_contracts.names import TargetKind
from chronoflow_contracts.runs import RunRequested

# Re-exported (the redundant aliases say so to mypy): the executors import them from here.
from chronoflow_platform.delivery import Delivery, delivery_of
from chronoflow_platform.executor.consumer import Job
from chronoflow_platform.executor.rules import TARGET_TYPES
from chronoflow_platform.logs import chrono_id_var, run_id_var
from chronoflow_platform.telemetry import consumer_span, tracing_active

log = logging.getLogger(__name__)

#: Longest pause before a message whose handling crashed is offered again.
MAX_REDELIVERY_DELAY_S = 30.0
#: Sees each delivery before it is handled (backlog and redelivery metrics).
DeliveryObserver = Callable[[Delivery], None]
#: Whether history already holds a request's outcome (so a redelivery need not run it again).
FinishedCheck = Callable[[RunRequested], Awaitable[bool]]


class RunExecutor(Protocol):
    """What an executor does with a decoded request."""

    async def execute(self, request: RunRequested, /) -> object:
        """Run the attempt and record it (RunStarted, RunCompleted, the retry)."""

    async def give_up(self, request: RunRequested, reason: str, /) -> None:
        """Record a final failure for a request that could not be processed at all."""


class UnprocessableMessageError(ValueError):
    """A message on a work queue that is not a RunRequested of that queue's target type."""


def decode_request(msg: Msg, target: TargetKind) -> RunRequested:
    """The RunRequested in ``msg``, upcast to the latest version."""
    headers = msg.headers or {}
    event_type = headers.get(names.EVENT_TYPE, RunRequested.TYPE)
    queue = target.upper()
    try:
        version = int(headers.get(names.EVENT_VERSION, "1"))
        if event_type == RunRequested.TYPE and version == RunRequested.VERSION:
            # The common case, parsed straight from JSON by pydantic-core.
            event: Event = RunRequested.model_validate_json(msg.data)
        else:
            event = decode(event_type, version, msg.data)
    except (UnknownEventError, ValidationError, ValueError) as exc:
        raise UnprocessableMessageError(f"undecodable message: {exc}") from exc
    if not isinstance(event, RunRequested):
        raise UnprocessableMessageError(f"{event.TYPE} does not belong on the {queue} queue")
    if event.target_type != TARGET_TYPES[target]:
        raise UnprocessableMessageError(f"a {event.target_type} run on the {queue} queue")
    return event


class RunRequestHandler:
    """Decodes a message as it arrives (the consumer's ``Handler``), and once it is due
    runs it and acks it; hands it back to JetStream if anything unexpected fails (with a
    growing delay), and records a final failure on the last delivery."""

    def __init__(
        self,
        executor: RunExecutor,
        target: TargetKind,
        *,
        max_deliver: int,
        observe: DeliveryObserver | None = None,
        already_finished: FinishedCheck | None = None,
    ) -> None:
        self._executor = executor
        self._target = target
        self._span = f"executor-{target} run"
        self._max_deliver = max_deliver
        self._observe = observe
        self._already_finished = already_finished

    def __call__(self, msg: Msg) -> Job:
        """The message decoded, as the job that runs it (or drops it, if it cannot be run)."""
        delivery = delivery_of(msg)
        if self._observe is not None:
            self._observe(delivery)
        try:
            request = decode_request(msg, self._target)
        except UnprocessableMessageError as exc:
            return _Drop(msg, exc)
        return _Run(self, msg, request, delivery.number)

    async def run(self, msg: Msg, request: RunRequested, delivery: int) -> None:
        """Run a decoded request (once it is due) and settle its message."""
        chrono_id_var.set(request.chrono_id)
        run_id_var.set(request.run_id)
        if not tracing_active():
            # No tracer installed: skip building a no-op span for every run.
            await self._run(msg, request, delivery)
            return
        attributes = {
            "chronoflow.chrono_id": request.chrono_id,
            "chronoflow.run_id": request.run_id,
            "chronoflow.attempt": str(request.attempt),
        }
        with consumer_span(self._span, msg.headers, attributes):
            await self._run(msg, request, delivery)

    async def _run(self, msg: Msg, request: RunRequested, delivery: int) -> None:
        try:
            if await self._finished_before(request, delivery):
                log.info(
                    "run %s already finished (delivery %d); not running it again",
                    request.run_id,
                    delivery,
                )
            else:
                await self._executor.execute(request)
        except Exception as exc:
            if delivery < self._max_deliver:
                log.exception("run failed unexpectedly (delivery %d); redelivering", delivery)
                await msg.nak(delay=min(2.0**delivery, MAX_REDELIVERY_DELAY_S))
                return
            log.exception("run failed unexpectedly on its last delivery (%d)", delivery)
            try:
                await self._executor.give_up(
                    request, f"executor error after {delivery} deliveries: {type(exc).__name__}"
                )
            finally:
                await msg.term()
            return
        await msg.ack()

    async def _finished_before(self, request: RunRequested, delivery: int) -> bool:
        # Only a redelivery can find its outcome recorded already (its ack was lost).
        return (
            delivery > 1
            and self._already_finished is not None
            and await self._already_finished(request)
        )


class _Run:
    """A decoded run request, due at its ``scheduledFor``."""

    __slots__ = ("_delivery", "_handler", "_msg", "_request", "due")

    def __init__(
        self, handler: RunRequestHandler, msg: Msg, request: RunRequested, delivery: int
    ) -> None:
        self._handler = handler
        self._msg = msg
        self._request = request
        self._delivery = delivery
        self.due = request.scheduled_for.timestamp()

    @property
    def name(self) -> str:
        return f"run {self._request.run_id}"

    def run(self) -> Coroutine[Any, Any, None]:
        return self._handler.run(self._msg, self._request, self._delivery)


class _Drop:
    """A message that is not a run request of its queue: terminated at once."""

    __slots__ = ("_msg", "_reason")
    due = 0.0

    def __init__(self, msg: Msg, reason: UnprocessableMessageError) -> None:
        self._msg = msg
        self._reason = reason

    @property
    def name(self) -> str:
        return f"message {self._msg.metadata.sequence.stream}"

    async def run(self) -> None:
        log.error("dropping %s: %s", self.name, self._reason)
        await self._msg.term()
