"""The subscriber: decode a RunRequested from the MESSAGE queue, run it, settle the message."""

from __future__ import annotations

import logging

from nats.aio.msg import Msg
from pydantic import ValidationError

from chronoflow_contracts import UnknownEventError, decode, names
from chronoflow_contracts.chrono import TargetType
from chronoflow_contracts.runs import RunRequested
from chronoflow_executor_message.service import MessageExecutor
from chronoflow_platform.logs import chrono_id_var, run_id_var
from chronoflow_platform.telemetry import consumer_span

log = logging.getLogger(__name__)

#: Longest pause before a message whose handling crashed is offered again.
MAX_REDELIVERY_DELAY_S = 30.0


class UnprocessableMessageError(ValueError):
    """A message on the MESSAGE queue that is not a MESSAGE RunRequested."""


def decode_request(msg: Msg) -> RunRequested:
    """The RunRequested in ``msg``, upcast to the latest version."""
    headers = msg.headers or {}
    try:
        event = decode(
            headers.get(names.EVENT_TYPE, RunRequested.TYPE),
            int(headers.get(names.EVENT_VERSION, "1")),
            msg.data,
        )
    except (UnknownEventError, ValidationError, ValueError) as exc:
        raise UnprocessableMessageError(f"undecodable message: {exc}") from exc
    if not isinstance(event, RunRequested):
        raise UnprocessableMessageError(f"{event.TYPE} does not belong on the MESSAGE queue")
    if event.target_type != TargetType.MESSAGE:
        raise UnprocessableMessageError(f"a {event.target_type} run on the MESSAGE queue")
    return event


class RunRequestHandler:
    """Runs one message and acks it; hands it back to JetStream if anything unexpected fails.

    A message is acknowledged only after the attempt's RunCompleted (and any retry) is stored,
    so a crash at any point means a redelivery, never a lost run.
    """

    def __init__(self, executor: MessageExecutor, *, max_deliver: int) -> None:
        self._executor = executor
        self._max_deliver = max_deliver

    async def __call__(self, msg: Msg) -> None:
        meta = msg.metadata
        try:
            request = decode_request(msg)
        except UnprocessableMessageError as exc:
            log.error("dropping message %s: %s", meta.sequence.stream, exc)  # noqa: TRY400 - no traceback needed
            await msg.term()
            return
        chrono_id_var.set(request.chrono_id)
        run_id_var.set(request.run_id)
        attributes = {
            "chronoflow.chrono_id": request.chrono_id,
            "chronoflow.run_id": request.run_id,
            "chronoflow.attempt": str(request.attempt),
        }
        with consumer_span("executor-message run", msg.headers, attributes):
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
