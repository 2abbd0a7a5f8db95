"""The subscribers: a RunRequested from the work queue, and a test request from the api."""

from __future__ import annotations

import asyncio
import logging

from nats.aio.msg import Msg
from pydantic import ValidationError

from chronoflow_contracts import UnknownEventError, decode, names
from chronoflow_contracts.chrono import TargetType
from chronoflow_contracts.functions import FunctionTestReply, FunctionTestRequest
from chronoflow_contracts.runs import RunRequested
from chronoflow_executor_function.service import FunctionExecutor
from chronoflow_platform.logs import chrono_id_var, run_id_var
from chronoflow_platform.telemetry import consumer_span

log = logging.getLogger(__name__)

#: Longest pause before a message whose handling crashed is offered again.
MAX_REDELIVERY_DELAY_S = 30.0


class UnprocessableMessageError(ValueError):
    """A message on the FUNCTION queue that is not a FUNCTION RunRequested."""


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
        raise UnprocessableMessageError(f"{event.TYPE} does not belong on the FUNCTION queue")
    if event.target_type != TargetType.FUNCTION:
        raise UnprocessableMessageError(f"a {event.target_type} run on the FUNCTION queue")
    return event


class RunRequestHandler:
    """Runs one message and acks it; hands it back to JetStream if anything unexpected fails.

    A message is acknowledged only after the attempt's RunCompleted (and any retry) is stored,
    so a crash at any point means a redelivery, never a lost run.
    """

    def __init__(self, executor: FunctionExecutor, *, max_deliver: int) -> None:
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
        }
        with consumer_span("executor-function run", msg.headers, attributes):
            await self._run(msg, request, meta.num_delivered)

    async def _run(self, msg: Msg, request: RunRequested, delivery: int) -> None:
        try:
            if delivery > 1 and await self._executor.already_finished(request):
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


class TestRequestHandler:
    """Answers ``FUNCTION_TEST_SUBJECT`` requests: run the function once, reply with the result.

    Each request runs in its own task (nats-py calls a subscription's callback one message at a
    time); at most ``concurrency`` tests run at once, so tests never take every sandbox from
    the scheduled runs.
    """

    __test__ = False  # not a pytest class, whatever its name says

    def __init__(self, executor: FunctionExecutor, *, concurrency: int) -> None:
        self._executor = executor
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    async def dispatch(self, msg: Msg) -> None:
        """The subscription callback: start the test and return at once."""
        task = asyncio.create_task(self._handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Abandon tests in progress (their callers get a timeout)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            request = FunctionTestRequest.model_validate_json(msg.data)
        except ValidationError as exc:
            reply = FunctionTestReply(
                error_code="invalid", error_message=f"bad test request: {exc}"
            )
        else:
            attributes = {"chronoflow.function_id": request.function_id}
            async with self._slots:
                with consumer_span("executor-function test", msg.headers, attributes):
                    reply = await self._test(request)
        try:
            await msg.respond(reply.model_dump_json(by_alias=True).encode())
        except Exception:
            log.exception("could not answer a test request")

    async def _test(self, request: FunctionTestRequest) -> FunctionTestReply:
        try:
            return await self._executor.test(request)
        except Exception as exc:
            log.exception("testing function %s failed", request.function_id)
            return FunctionTestReply(
                error_code="internal",
                error_message=f"executor-function could not run the test: {type(exc).__name__}",
            )
