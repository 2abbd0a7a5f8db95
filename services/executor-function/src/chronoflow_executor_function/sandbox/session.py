"""The host side of one run: relay its host calls to the bridge, count quotas, keep time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from chronoflow_executor_function.sandbox import ops, protocol
from chronoflow_executor_function.sandbox.bridge import HostBridge, HostOpError
from chronoflow_executor_function.sandbox.model import (
    FunctionInput,
    FunctionResult,
    Limits,
    Termination,
)
from chronoflow_executor_function.sandbox.outcome import build_result, host_failure
from chronoflow_executor_function.sandbox.process import WorkerProcess, expect

logger = logging.getLogger(__name__)

HOST_MARGIN_S = 1.0
"""Host operations may outlive the run's deadline by this much: the deadline, not a request
timeout racing it, must be what ends a slow run (the run's end cancels them anyway)."""


class RunSession:
    """The host side of one run on one worker."""

    def __init__(
        self, worker: WorkerProcess, ctx_input: FunctionInput, host: HostBridge, limits: Limits
    ) -> None:
        self.worker = worker
        self.ctx_input = ctx_input
        self.host = host
        self.limits = limits
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        self.deadline = self.started + limits.timeout_ms / 1000
        self.http_calls = 0
        self.messages_charged = 0
        self.messages_sent = 0
        self.tasks: dict[int, asyncio.Task[None]] = {}
        """Host calls in flight (each removes itself when done)."""
        self.last_op_id = 0
        self.abort: tuple[Termination, str] | None = None
        self.retired = False
        """The worker hit a bug of its own and is exiting after this run."""

    def _elapsed_ms(self) -> float:
        return (self.loop.time() - self.started) * 1000

    def _failure(self, termination: Termination, message: str) -> FunctionResult:
        return host_failure(
            termination,
            message,
            self.ctx_input,
            http_calls=self.http_calls,
            messages_sent=self.messages_sent,
            duration_ms=self._elapsed_ms(),
        )

    async def run(self, job: dict[str, Any], grace_s: float) -> tuple[FunctionResult, bool]:
        worker = self.worker
        worker.seq += 1
        seq = job["run"] = worker.seq
        try:
            await worker.send(job)
            async with asyncio.timeout_at(self.deadline + grace_s):
                result = await self._serve(seq)
                return result, not self.retired
        except TimeoutError:
            logger.warning("sandbox worker %d ignored its deadline; killing it", worker.pid)
            return self._failure(
                Termination.TIMEOUT,
                f"timeoutMs exceeded ({self.limits.timeout_ms} ms); the worker was killed",
            ), False
        except (asyncio.IncompleteReadError, ConnectionError):
            await worker.proc.wait()
            logger.warning("sandbox worker %d died: %s", worker.pid, worker.describe_exit())
            return self._failure(
                Termination.CRASHED, f"the sandbox worker died ({worker.describe_exit()})"
            ), False
        except protocol.ProtocolError as exc:
            logger.warning("sandbox worker %d broke the protocol: %s", worker.pid, exc)
            return self._failure(Termination.CRASHED, "the sandbox worker misbehaved"), False
        finally:
            pending = list(self.tasks.values())
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _serve(self, seq: int) -> FunctionResult:
        """Perform the run's host operations until the worker reports it done."""
        while True:
            message = await self.worker.recv()
            if message.get("run") != seq:
                raise protocol.ProtocolError("message for another run")
            if message["t"] == protocol.DONE:
                return self._done(message)
            expect(message, protocol.OP)
            await self._on_op(seq, message)

    def _done(self, message: protocol.Message) -> FunctionResult:
        self.retired = bool(message.get("retire"))
        payload = message.get("result")
        if not isinstance(payload, dict):
            raise protocol.ProtocolError("done without a result")
        try:
            return build_result(
                payload,
                self.ctx_input,
                self.limits,
                http_calls=self.http_calls,
                messages_sent=self.messages_sent,
                duration_ms=self._elapsed_ms(),
                override=self.abort,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise protocol.ProtocolError(f"malformed result: {exc}") from exc

    async def _on_op(self, seq: int, message: protocol.Message) -> None:
        op_id, kind, args = message.get("id"), message.get("op"), message.get("args")
        if not isinstance(op_id, int) or op_id <= self.last_op_id or not isinstance(args, dict):
            raise protocol.ProtocolError("malformed op")
        self.last_op_id = op_id
        if len(self.tasks) >= self.limits.max_pending_calls:
            raise protocol.ProtocolError("more host calls in flight than the SDK allows")
        if kind not in (ops.HTTP, ops.MESSAGE, ops.SLEEP):
            raise protocol.ProtocolError(f"unknown op {kind!r}")
        if self.abort is not None:
            return
        exceeded = self._charge(kind)
        if exceeded is not None:
            self.abort = (Termination.QUOTA, exceeded)
            for task in list(self.tasks.values()):
                task.cancel()
            await self.worker.send(
                {
                    "t": protocol.ABORT,
                    "run": seq,
                    "termination": Termination.QUOTA.value,
                    "message": exceeded,
                }
            )
            return
        task = asyncio.create_task(self._perform(seq, op_id, kind, args))
        self.tasks[op_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(op_id, None))

    def _charge(self, kind: str) -> str | None:
        if kind == ops.HTTP:
            self.http_calls += 1
            if self.http_calls > self.limits.max_http:
                self.http_calls -= 1
                return f"maxHttp exceeded ({self.limits.max_http})"
        elif kind == ops.MESSAGE:
            self.messages_charged += 1
            if self.messages_charged > self.limits.max_messages:
                return f"maxMessages exceeded ({self.limits.max_messages})"
        return None

    async def _perform(self, seq: int, op_id: int, kind: str, args: dict[str, Any]) -> None:
        reply: protocol.Message = {"t": protocol.REPLY, "run": seq, "id": op_id}
        try:
            value = await ops.perform(
                kind,
                args,
                self.host,
                self.limits,
                self.deadline + HOST_MARGIN_S - self.loop.time(),
            )
        except (ops.OpRejected, HostOpError) as exc:
            reply.update(ok=False, error=str(exc)[:2000] or type(exc).__name__)
        except Exception as exc:
            logger.info("ctx.%s failed: %r", kind, exc)
            reply.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:2000])
        else:
            if kind == ops.MESSAGE:
                self.messages_sent += 1
            reply.update(ok=True, value=value)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.worker.send(reply)
