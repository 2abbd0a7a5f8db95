"""The parent's handle on one sandbox worker process: spawn it, talk to it, stop it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from chronoflow_executor_function.sandbox import protocol
from chronoflow_executor_function.sandbox.compiled import EngineSettings

WORKER_MODULE = "chronoflow_executor_function.sandbox.worker"
WORKER_ENV = {"PATH": os.defpath, "LC_ALL": "C.UTF-8", "MALLOC_ARENA_MAX": "2"}
"""The whole environment of a worker: none of the service's variables (and secrets)."""


def expect(message: protocol.Message, kind: str) -> None:
    if message.get("t") != kind:
        raise protocol.ProtocolError(f"expected {kind!r}, got {message.get('t')!r}")


class WorkerProcess:
    """A running worker; one run at a time (``seq`` numbers its runs)."""

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


async def spawn_worker(
    settings: EngineSettings, module_path: Path, headroom_bytes: int, start_timeout_s: float
) -> WorkerProcess:
    """Start a worker, hand it the engine settings and compiled module, wait until ready."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-m",
        WORKER_MODULE,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=WORKER_ENV,
        start_new_session=True,
    )
    worker = WorkerProcess(proc)
    try:
        await worker.send(
            {
                "t": protocol.INIT,
                "settings": {
                    "max_memory_mb": settings.max_memory_mb,
                    "wasm_stack_kb": settings.wasm_stack_kb,
                    "epoch_tick_ms": settings.epoch_tick_ms,
                },
                "module_path": str(module_path),
                "address_space_headroom": headroom_bytes,
            }
        )
        expect(await asyncio.wait_for(worker.recv(), start_timeout_s), protocol.READY)
    except BaseException:
        await worker.stop(kill=True)
        raise
    return worker
