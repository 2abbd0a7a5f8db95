"""A pool of sandbox worker processes, and the host side of every run.

Each worker runs one function at a time. The parent sends the run, performs the host
operations the function asks for (through the ``HostBridge``, with asyncio, concurrently),
counts them against the quotas, and holds a hard deadline of its own: a worker that crashes,
is killed, or stops answering ends only the run it was serving, and is replaced.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from chronoflow_executor_function.sandbox import protocol
from chronoflow_executor_function.sandbox.bridge import HostBridge
from chronoflow_executor_function.sandbox.compiled import EngineSettings, prepare_module
from chronoflow_executor_function.sandbox.model import MIB, FunctionInput, FunctionResult, Limits
from chronoflow_executor_function.sandbox.outcome import sdk_input
from chronoflow_executor_function.sandbox.process import WorkerProcess, spawn_worker
from chronoflow_executor_function.sandbox.session import RunSession

logger = logging.getLogger(__name__)


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


class SandboxPool:
    """Runs functions in worker processes; ``async with SandboxPool(config) as pool``."""

    def __init__(self, config: PoolConfig) -> None:
        if config.size < 1:
            raise ValueError("the pool needs at least one worker")
        self.config = config
        self.stats = PoolStats()
        self._idle: asyncio.Queue[WorkerProcess | None] = asyncio.Queue()
        """Idle workers; ``None`` once the pool is closed."""
        self._workers: set[WorkerProcess] = set()
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
        started = await asyncio.gather(
            *(self._spawn() for _ in range(self.config.size)), return_exceptions=True
        )
        failures = [item for item in started if isinstance(item, BaseException)]
        if failures:
            await self.close()
            raise SandboxError("sandbox workers failed to start") from failures[0]
        for worker in started:
            assert isinstance(worker, WorkerProcess)
            self._idle.put_nowait(worker)

    async def close(self) -> None:
        """Stop every worker (runs in progress end as ``crashed``)."""
        self._closed = True
        for task in self._spawning:
            task.cancel()
        await asyncio.gather(*self._spawning, return_exceptions=True)
        await asyncio.gather(*(w.stop(kill=False) for w in list(self._workers)))
        self._workers.clear()
        self._idle.put_nowait(None)  # wakes whoever waits for a worker (see _acquire)

    async def _spawn(self) -> WorkerProcess:
        assert self._module_path is not None
        worker = await spawn_worker(
            self.config.engine,
            self._module_path,
            self.config.headroom_bytes,
            self.config.start_timeout_s,
        )
        self._workers.add(worker)
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

    async def _acquire(self) -> WorkerProcess:
        while True:
            if self._closed or self._module_path is None:
                raise SandboxError("the sandbox pool is not running")
            worker = await self._idle.get()
            if worker is None:
                self._idle.put_nowait(None)  # and the next waiter, and the one after
                raise SandboxError("the sandbox pool is not running")
            if worker.alive:
                return worker
            self._discard(worker)

    def _discard(self, worker: WorkerProcess) -> None:
        self._workers.discard(worker)
        self.stats.workers_lost += 1
        self._replace_later()

    async def _release(self, worker: WorkerProcess, *, healthy: bool) -> None:
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
            session = RunSession(worker, ctx_input, host, limits)
            result, healthy = await session.run(job, self.config.kill_grace_s)
            return result
        finally:
            await asyncio.shield(self._release(worker, healthy=healthy))
