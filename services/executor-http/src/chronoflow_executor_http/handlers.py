"""The subscriber: decode a RunRequested from the work queue, run it, settle the message."""

from __future__ import annotations

import logging

from nats.aio.msg import Msg
from pydantic import ValidationError

from chronoflow_contracts import Event, UnknownEventError, decode, names
from chronoflow_contracts.chrono import TargetType
from chronoflow_contracts.runs import RunRequested
from chronoflow_executor_http.metrics import ExecutorMetrics
from chronoflow_executor_http.service import WebhookExecutor
from chronoflow_platform.logs import chrono_id_var, run_id_var
from chronoflow_platform.telemetry import consumer_span, tracing_active

log = logging.getLogger(__name__)

#: Longest pause before a message whose handling crashed is offered again.
MAX_REDELIVERY_DELAY_S = 30.0


class UnprocessableMessageError(ValueError):
    """A message on the HTTP queue that is not an HTTP RunRequested."""


def decode_request(msg: Msg) -> RunRequested:
    """The RunRequested in ``msg``, upcast to the latest version."""
    headers = msg.headers or {}
    event_type = headers.get(names.EVENT_TYPE, RunRequested.TYPE)
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
        raise UnprocessableMessageError(f"{event.TYPE} does not belong on the HTTP queue")
    if event.target_type != TargetType.HTTP:
        raise UnprocessableMessageError(f"a {event.target_type} run on the HTTP queue")
    return event


class RunRequestHandler:
    """Runs one message and acks it; hands it back to JetStream if anything unexpected fails.

    A message is acknowledged only after the attempt's RunCompleted (and any retry) is stored,
    so a crash at any point means a redelivery, never a lost run.
    """

    def __init__(
        self, executor: WebhookExecutor, metrics: ExecutorMetrics, *, max_deliver: int
    ) -> None:
        self._executor = executor
        self._metrics = metrics
        self._max_deliver = max_deliver

    async def __call__(self, msg: Msg) -> None:
        meta = msg.metadata
        self._metrics.http_pending.set(meta.num_pending)
        if meta.num_delivered > 1:
            self._metrics.http_redeliveries.inc()
        try:
            request = decode_request(msg)
        except UnprocessableMessageError as exc:
            log.error("dropping message %s: %s", meta.sequence.stream, exc)  # noqa: TRY400 - no traceback needed
            await msg.term()
            return
        chrono_id_var.set(request.chrono_id)
        run_id_var.set(request.run_id)
        if not tracing_active():
            # No tracer installed: skip building a no-op span for every run.
            await self._run(msg, request, meta.num_delivered)
            return
        attributes = {
            "chronoflow.chrono_id": request.chrono_id,
            "chronoflow.run_id": request.run_id,
            "chronoflow.attempt": str(request.attempt),
        }
        with consumer_span("executor-http run", msg.headers, attributes):
            await self._run(msg, request, meta.num_delivered)

    async def _run(self, msg: Msg, request: RunRequested, delivery: int) -> None:
        try:
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
