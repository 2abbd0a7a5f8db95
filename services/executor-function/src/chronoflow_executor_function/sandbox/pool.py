"""A pool of sandbox worker processes, and the host side of every run.

Each worker runs one function at a time. The parent sends the run, performs the host
operations the function asks for (through the ``HostBridge``, with asyncio, concurrently),
counts them against the quotas, and holds a hard deadline of its own: a worker that crashes,
is killed, or stops answering ends only the run it was serving, and is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from chronoflow_executor_function.sandbox import ops, protocol
from chronoflow_executor_function.sandbox.bridge import HostBridge, HostOpError
from chronoflow_executor_function.sandbox.compiled import EngineSettings, prepare_module
from chronoflow_executor_function.sandbox.model import (
    MIB,
    FunctionInput,
    FunctionResult,
    Limits,
    Termination,
)
from chronoflow_executor_function.sandbox.outcome import build_result, host_failure, sdk_input

logger = logging.getLogger(__name__)

WORKER_MODULE = "chronoflow_executor_function.sandbox.worker"
HOST_MARGIN_S = 1.0
"""Host operations may outlive the run's deadline by this much: the deadline, not a request
timeout racing it, must be what ends a slow run (the run's end cancels them anyway)."""


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """How many workers, where the compiled module is cached, and the engine's settings."""

    cache_dir: Path
    size: int = 2
    engine: EngineSettings = field(default_factory=EngineSettings)
    max_runs_per_worker: int = 1000
    """Recycle a worker after this many runs (hygiene; a store never outlives its run)."""
    kill_grace_s: float = 2.0
    """How long past a run's deadline the parent waits before killing a silent worker."""
    start_timeout_s: float = 60.0
    address_space_headroom_mb: int | None = None
    """RLIMIT_AS of a worker above its size once loaded; default: two stores + 512 MiB."""

    @property
    def headroom_bytes(self) -> int:
        """The worker's address-space headroom in bytes."""
        if self.address_space_headroom_mb is not None:
            return self.address_space_headroom_mb * MIB
        return 2 * self.engine.memory_reservation + 512 * MIB


@dataclass
class PoolStats:
    """Counters for metrics and health checks."""

    runs: int = 0
    workers_started: int = 0
    workers_lost: int = 0
    """Workers that crashed, were killed for silence, or broke the protocol."""


class SandboxError(RuntimeError):
    """The pool cannot run anything (not started, closed, or workers fail to start)."""


def _expect(message: protocol.Message, kind: str) -> None:
    if message.get("t") != kind:
        raise protocol.ProtocolError(f"expected {kind!r}, got {message.get('t')!r}")


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seq = 0
        self.runs = 0
        assert proc.stdin is not None
        assert proc.stdout is not None
        self._stdin = proc.stdin
        self._stdout = proc.stdout

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def send(self, message: protocol.Message) -> None:
        self._stdin.write(protocol.encode(message))
        await self._stdin.drain()

    async def recv(self) -> protocol.Message:
        return await protocol.read_message(self._stdout)

    async def stop(self, *, kill: bool) -> None:
        if self.alive:
            if kill:
                self.proc.kill()
            else:
                self._stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self._stdin.close()

    def describe_exit(self) -> str:
        code = self.proc.returncode
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"


class SandboxPool:
    """Runs functions in worker processes; ``async with SandboxPool(config) as pool``."""

    def __init__(self, config: PoolConfig) -> None:
        if config.size < 1:
            raise ValueError("the pool needs at least one worker")
        self.config = config
        self.stats = PoolStats()
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._workers: set[_Worker] = set()
        self._spawning: set[asyncio.Task[None]] = set()
        self._module_path: Path | None = None
        self._closed = False

    async def __aenter__(self) -> SandboxPool:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def worker_pids(self) -> tuple[int, ...]:
        """Pids of the live workers (for health checks and tests)."""
        return tuple(sorted(w.pid for w in self._workers if w.alive))

    async def start(self) -> None:
        """Compile (or load from the cache) the QuickJS module, then start every worker."""
        self._module_path = await asyncio.to_thread(
            prepare_module, self.config.cache_dir, self.config.engine
        )
        workers = await asyncio.gather(*(self._spawn() for _ in range(self.config.size)))
        for worker in workers:
            self._idle.put_nowait(worker)

    async def close(self) -> None:
        """Stop every worker (runs in progress end as ``crashed``)."""
        self._closed = True
        for task in self._spawning:
            task.cancel()
        await asyncio.gather(*self._spawning, return_exceptions=True)
        await asyncio.gather(*(w.stop(kill=False) for w in list(self._workers)))
        self._workers.clear()

    async def _spawn(self) -> _Worker:
        assert self._module_path is not None
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-m",
            WORKER_MODULE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={"PATH": os.defpath, "LC_ALL": "C.UTF-8", "MALLOC_ARENA_MAX": "2"},
            start_new_session=True,
        )
        worker = _Worker(proc)
        self._workers.add(worker)
        try:
            await worker.send(
                {
                    "t": protocol.INIT,
                    "settings": {
                        "max_memory_mb": self.config.engine.max_memory_mb,
                        "wasm_stack_kb": self.config.engine.wasm_stack_kb,
                        "epoch_tick_ms": self.config.engine.epoch_tick_ms,
                    },
                    "module_path": str(self._module_path),
                    "address_space_headroom": self.config.headroom_bytes,
                }
            )
            ready = await asyncio.wait_for(worker.recv(), self.config.start_timeout_s)
            _expect(ready, protocol.READY)
        except BaseException:
            self._workers.discard(worker)
            await worker.stop(kill=True)
            raise
        self.stats.workers_started += 1
        return worker

    def _replace_later(self) -> None:
        if self._closed:
            return
        task = asyncio.create_task(self._replace())
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)

    async def _replace(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                worker = await self._spawn()
            except (OSError, protocol.ProtocolError, asyncio.IncompleteReadError, TimeoutError):
                logger.exception("a sandbox worker failed to start; retrying in %.1fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            else:
                self._idle.put_nowait(worker)
                return

    async def _acquire(self) -> _Worker:
        while True:
            if self._closed or self._module_path is None:
                raise SandboxError("the sandbox pool is not running")
            worker = await self._idle.get()
            if worker.alive:
                return worker
            self._discard(worker)

    def _discard(self, worker: _Worker) -> None:
        self._workers.discard(worker)
        self.stats.workers_lost += 1
        self._replace_later()

    async def _release(self, worker: _Worker, *, healthy: bool) -> None:
        worker.runs += 1
        if healthy and worker.alive and worker.runs < self.config.max_runs_per_worker:
            self._idle.put_nowait(worker)
            return
        if healthy:  # recycled, not lost
            self._workers.discard(worker)
            self._replace_later()
            await worker.stop(kill=False)
            return
        self._discard(worker)
        await worker.stop(kill=True)

    async def run_function(
        self, code: str, ctx_input: FunctionInput, host: HostBridge, limits: Limits
    ) -> FunctionResult:
        """Run ``code`` (an ES module exporting ``default async function run(ctx)``) once."""
        if limits.memory_mb > self.config.engine.max_memory_mb:
            raise ValueError(
                f"memory_mb {limits.memory_mb} exceeds the pool's maximum "
                f"({self.config.engine.max_memory_mb})"
            )
        job = {
            "t": protocol.RUN,
            "code": code,
            "input": sdk_input(ctx_input, limits),
            "limits": limits.to_wire(),
        }
        worker = await self._acquire()
        self.stats.runs += 1
        healthy = False
        try:
            session = _Session(worker, ctx_input, host, limits)
            result, healthy = await session.run(job, self.config.kill_grace_s)
            return result
        finally:
            await asyncio.shield(self._release(worker, healthy=healthy))


class _Session:
    """The host side of one run on one worker."""

    def __init__(
        self, worker: _Worker, ctx_input: FunctionInput, host: HostBridge, limits: Limits
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
                return await self._serve(seq), True
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
            _expect(message, protocol.OP)
            await self._on_op(seq, message)

    def _done(self, message: protocol.Message) -> FunctionResult:
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
