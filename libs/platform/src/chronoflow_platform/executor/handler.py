"""The subscriber skeleton: decode a RunRequested from a work queue, run it, settle the message.

A message is acknowledged only after the attempt's RunCompleted (and any retry) is stored, so
a crash at any point means a redelivery, never a lost run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

from nats.aio.msg import Msg
from pydantic import ValidationError

from chronoflow_contracts import Event, UnknownEventError, decode, names
from chronoflow_contracts.names import TargetKind
from chronoflow_contracts.runs import RunRequested
from chronoflow_platform.executor.rules import TARGET_TYPES
from chronoflow_platform.logs import chrono_id_var, run_id_var
from chronoflow_platform.telemetry import consumer_span, tracing_active

log = logging.getLogger(__name__)

#: Longest pause before a message whose handling crashed is offered again.
MAX_REDELIVERY_DELAY_S = 30.0
#: Tokens of a JetStream reply subject without a domain, and at least with one.
_V1_TOKENS = 9
_V2_TOKENS = 11


class Delivery(NamedTuple):
    """What the handler needs to know of a JetStream delivery."""

    #: Which delivery of the message this is (1: the first).
    number: int
    #: Messages left for the consumer after this one.
    pending: int


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


def delivery_of(msg: Msg) -> Delivery:
    """Which delivery this is, and the backlog, read from the message's JetStream reply subject.

    nats-py's ``msg.metadata`` parses the whole subject into frozen dataclasses and a datetime
    (~5 us a message) for these two numbers. Subjects of another shape go through it, which
    raises for a message that did not come from JetStream.
    """
    tokens = (msg.reply or "").split(".")
    if tokens[:2] == ["$JS", "ACK"]:
        if len(tokens) == _V1_TOKENS:
            # $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ns>.<pending>
            return Delivery(int(tokens[4]), int(tokens[8]))
        if len(tokens) >= _V2_TOKENS:
            # $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<stream seq>
            #   .<consumer seq>.<ns>.<pending>[.<token>]
            return Delivery(int(tokens[6]), int(tokens[10]))
    meta = msg.metadata
    return Delivery(meta.num_delivered, meta.num_pending)


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
    """Runs one message and acks it; hands it back to JetStream if anything unexpected fails
    (with a growing delay), and records a final failure on the last delivery."""

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

    async def __call__(self, msg: Msg) -> None:
        delivery = delivery_of(msg)
        if self._observe is not None:
            self._observe(delivery)
        try:
            request = decode_request(msg, self._target)
        except UnprocessableMessageError as exc:
            log.error("dropping message %s: %s", msg.metadata.sequence.stream, exc)  # noqa: TRY400 - no traceback needed
            await msg.term()
            return
        chrono_id_var.set(request.chrono_id)
        run_id_var.set(request.run_id)
        if not tracing_active():
            # No tracer installed: skip building a no-op span for every run.
            await self._run(msg, request, delivery.number)
            return
        attributes = {
            "chronoflow.chrono_id": request.chrono_id,
            "chronoflow.run_id": request.run_id,
            "chronoflow.attempt": str(request.attempt),
        }
        with consumer_span(self._span, msg.headers, attributes):
            await self._run(msg, request, delivery.number)

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
