"""The subscriber of test requests from the api (scheduled runs use the shared
:class:`chronoflow_platform.executor.handler.RunRequestHandler`)."""

from __future__ import annotations

import asyncio
import logging

from nats.aio.msg import Msg
from pydantic import ValidationError

from chronoflow_contracts.functions import FunctionTestReply, FunctionTestRequest
from chronoflow_executor_function.service import FunctionExecutor
from chronoflow_platform.telemetry import consumer_span

log = logging.getLogger(__name__)


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
