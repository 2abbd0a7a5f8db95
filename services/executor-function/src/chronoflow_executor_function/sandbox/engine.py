"""Runs one function in a fresh wasm store, driving QuickJS's job loop from the host (worker side).

The loop: run pending jobs, ask the SDK for queued host operations (``poll``), send them to
the parent, wait for replies, hand them to the SDK (``settle``), repeat until the main promise
has settled. Time spent executing wasm is bounded by epoch interruption (a ticker thread bumps
the engine's epoch every ``epoch_tick_ms``); time spent waiting for the host by the wall-clock
deadline. A store that trapped is never reused: each run gets a new one.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import wasmtime

from chronoflow_executor_function.sandbox import protocol
from chronoflow_executor_function.sandbox.compiled import (
    MEMORY_HEADROOM_MB,
    EngineSettings,
    build_config,
    load_module,
)
from chronoflow_executor_function.sandbox.model import KIB, MIB, Termination
from chronoflow_executor_function.sandbox.quickjs import (
    EVAL_TYPE_GLOBAL,
    UNDEFINED,
    GuestPointerError,
    JSException,
    JSValue,
    QuickJS,
    Snapshot,
)

FUEL = 1 << 62
"""Fuel only meters (the CPU limit is the epoch): a budget no run can exhaust."""
SALVAGE_MS = 100
"""How long the SDK may take to hand over logs and state after the run was cut short."""
HEAP_FULL_RATIO = 0.75
"""Linear-memory growth, as a share of the heap limit, taken as a sign the limit was reached
(growth stops short of it by the size of the allocation that failed)."""
KNOWN_OPS = frozenset({"http", "message", "sleep"})
USER_MODULE = "function.js"


class Channel(Protocol):
    """The worker's link to the parent."""

    def send(self, message: protocol.Message) -> None:
        """Send one message."""

    def recv(self, timeout: float | None) -> protocol.Message | None:
        """The next message, or ``None`` after ``timeout`` seconds."""


class _Stop(Exception):  # noqa: N818 - control flow, not an error
    """Ends the run loop with a termination decided by the host."""

    def __init__(self, termination: Termination, message: str) -> None:
        super().__init__(message)
        self.termination = termination
        self.message = message


@dataclass
class _Run:
    """Book-keeping of the run in progress."""

    seq: int
    limits: dict[str, int]
    started: float
    wall_deadline: float
    cpu_budget: float
    js_seconds: float = 0.0
    epoch_start: int = 0
    ops_sent: int = 0
    notes: list[str] = field(default_factory=list)

    def remaining(self) -> float:
        """Seconds the run may still spend in wasm: the tighter of wall clock and CPU."""
        return min(self.wall_deadline - time.monotonic(), self.cpu_budget - self.js_seconds)

    def timeout_message(self) -> str:
        cpu_first = self.cpu_budget - self.js_seconds <= self.wall_deadline - time.monotonic()
        if cpu_first and self.limits["cpu_ms"] < self.limits["timeout_ms"]:
            return f"CPU limit exceeded ({self.limits['cpu_ms']} ms of JavaScript)"
        return f"timeoutMs exceeded ({self.limits['timeout_ms']} ms)"


def _sdk_source() -> str:
    return (
        resources.files("chronoflow_executor_function.sandbox")
        .joinpath("sdk.js")
        .read_text(encoding="utf-8")
    )


class Sandbox:
    """A worker's engine, compiled module and epoch ticker; ``execute`` runs one function."""

    def __init__(self, settings: EngineSettings, module_path: Path) -> None:
        self.settings = settings
        self.engine = wasmtime.Engine(build_config(settings))
        linker = wasmtime.Linker(self.engine)
        # WASI with an empty configuration: no preopened directories, no environment, no
        # arguments, no stdio. QuickJS uses it for clocks only.
        linker.define_wasi()
        self._pre = linker.instantiate_pre(load_module(self.engine, module_path))
        self._tick = settings.epoch_tick_ms / 1000
        self._snapshot = self._boot(_sdk_source())
        self.epoch = 0
        self._stopping = threading.Event()
        self._ticker = threading.Thread(target=self._tick_loop, name="epoch-ticker", daemon=True)
        self._ticker.start()

    def _boot(self, sdk: str) -> Snapshot:
        """QuickJS with the SDK evaluated, captured once; every run starts from a copy."""
        store = wasmtime.Store(self.engine)
        store.set_wasi(wasmtime.WasiConfig())
        store.set_fuel(FUEL)
        store.set_epoch_deadline(1 << 32)
        pristine_store = wasmtime.Store(self.engine)
        pristine_store.set_wasi(wasmtime.WasiConfig())
        pristine = QuickJS(pristine_store, self._pre.instantiate(pristine_store))
        pristine_image = bytes(pristine.memory.read(pristine_store))
        qjs = QuickJS.boot(store, self._pre.instantiate(store))
        qjs.open_context()
        install = qjs.eval(sdk, "chronoflow:sdk", EVAL_TYPE_GLOBAL)
        return qjs.snapshot(install, pristine_image)

    def _tick_loop(self) -> None:
        while not self._stopping.wait(self._tick):
            self.engine.increment_epoch()
            self.epoch += 1

    def close(self) -> None:
        """Stop the ticker."""
        self._stopping.set()
        self._ticker.join()

    # ---- one run

    def execute(self, job: protocol.Message, channel: Channel) -> dict[str, Any]:
        """Run ``job`` (a ``run`` message) and return the ``done`` payload's ``result``."""
        limits: dict[str, int] = job["limits"]
        now = time.monotonic()
        run = _Run(
            seq=job["run"],
            limits=limits,
            started=now,
            wall_deadline=now + limits["timeout_ms"] / 1000,
            cpu_budget=limits["cpu_ms"] / 1000,
            epoch_start=self.epoch,
        )
        heap_limit = limits["memory_mb"] * MIB
        store = wasmtime.Store(self.engine)
        store.set_wasi(wasmtime.WasiConfig())
        store.set_limits(
            memory_size=heap_limit + MEMORY_HEADROOM_MB * MIB, instances=1, tables=1, memories=1
        )
        store.set_fuel(FUEL)
        try:
            return self._execute(store, job, run, channel)
        finally:
            # Free the store (and its address-space reservation) now: after a trap, reference
            # cycles through the traceback would otherwise keep it alive until a GC pass.
            store.close()

    def _execute(
        self, store: wasmtime.Store, job: protocol.Message, run: _Run, channel: Channel
    ) -> dict[str, Any]:
        limits = run.limits
        heap_limit = limits["memory_mb"] * MIB
        qjs: QuickJS | None = None
        dispatch: JSValue | None = None
        outcome: dict[str, Any] | None = None
        termination = Termination.ERROR
        message: str | None = None
        error: dict[str, str] | None = None
        sdk_failed = False
        try:
            with self._in_wasm(store, run):
                qjs = QuickJS.restore(store, self._pre.instantiate(store), self._snapshot)
                qjs.set_memory_limit(heap_limit)
                qjs.set_stack_size(limits["js_stack_kb"] * KIB)
                start = qjs.call_with_string(self._snapshot.entry, job["input"])
                dispatch = self._start(qjs, start, job["code"])
            outcome = self._drive(qjs, dispatch, store, run, channel)
        except _Stop as stop:
            termination, message = stop.termination, stop.message
        except wasmtime.Trap as trap:
            termination, message = self._classify_trap(trap, run)
        except JSException:
            # Only the SDK's own calls get here (user errors settle the main promise), and
            # only when the heap is exhausted: the engine could not even report the error.
            termination, message = Termination.ERROR, "the SDK failed (heap exhausted)"
            sdk_failed = True
        except MemoryError:
            termination, message = Termination.MEMORY, "out of memory"
        except GuestPointerError as exc:
            termination, message = Termination.ERROR, f"sandbox fault: {exc}"
        except wasmtime.WasmtimeError as exc:
            termination, message = Termination.ERROR, f"sandbox error: {exc}"
        if outcome is not None:
            if outcome["ok"]:
                termination = Termination.COMPLETED
                if outcome.get("note"):
                    run.notes.append(str(outcome["note"]))
            else:
                error = outcome["error"]
                termination, message = Termination.ERROR, _error_line(error)
        memory_bytes = qjs.memory.data_len(store) if qjs is not None else 0
        # Linear memory never shrinks: if it grew by most of the heap limit, the limit was
        # probably reached at some point, even if the function caught the error and went on.
        heap_full = (
            qjs is not None and memory_bytes - qjs.initial_memory >= heap_limit * HEAP_FULL_RATIO
        )
        out_of_memory = _thrown_oom(error) or (sdk_failed and heap_full)
        if termination is not Termination.COMPLETED and out_of_memory:
            termination = Termination.MEMORY
            message = f"memoryMb exceeded ({limits['memory_mb']} MiB): {message}"
        elif termination is Termination.TIMEOUT and heap_full:
            # Out-of-memory errors are catchable; a function that kept catching them was
            # ended by the CPU limit, which is what it gets reported as.
            message = f"{message}; the heap had reached memoryMb ({limits['memory_mb']} MiB)"
        report = self._salvage(qjs, dispatch, store, run)
        return {
            "termination": termination.value,
            "error_message": message,
            "error": error,
            "value": outcome.get("value") if outcome is not None and outcome["ok"] else None,
            "value_truncated": bool(outcome.get("truncated")) if outcome is not None else False,
            "report": report,
            "notes": run.notes,
            "usage": {
                "duration_ms": (time.monotonic() - run.started) * 1000,
                "js_ms": run.js_seconds * 1000,
                "fuel": FUEL - store.get_fuel(),
                "epoch_ticks": self.epoch - run.epoch_start,
                "memory_bytes": memory_bytes,
            },
        }

    @contextmanager
    def _in_wasm(self, store: wasmtime.Store, run: _Run) -> Iterator[None]:
        """Bound the enclosed wasm calls by what is left of the run, and account for them."""
        remaining = run.remaining()
        if remaining <= 0:
            raise _Stop(Termination.TIMEOUT, run.timeout_message())
        store.set_epoch_deadline(max(1, math.ceil(remaining / self._tick)))
        began = time.perf_counter()
        try:
            yield
        finally:
            run.js_seconds += time.perf_counter() - began

    @staticmethod
    def _start(qjs: QuickJS, start: JSValue, code: str) -> JSValue:
        """Compile and evaluate the user's module and start ``run(ctx)``: the SDK's dispatch."""
        try:
            module = qjs.compile_module(code, USER_MODULE)
            evaluated, namespace = qjs.evaluate_module(module)
        except JSException as exc:
            # A syntax or import error: the SDK reports it like any other thrown error.
            return qjs.call(start, [UNDEFINED, exc.value])
        return qjs.call(start, [namespace, evaluated])

    def _drive(
        self, qjs: QuickJS, dispatch: JSValue, store: wasmtime.Store, run: _Run, channel: Channel
    ) -> dict[str, Any]:
        while True:
            with self._in_wasm(store, run):
                qjs.run_pending_jobs()
                status = json.loads(qjs.call_for_string(dispatch, "p"))
            if status["outcome"] is not None:
                # Calls still queued or in flight now are abandoned, never performed late.
                pending = int(status["inflight"])
                if pending:
                    run.notes.append(
                        f"{pending} ctx call(s) were still pending when run() returned; "
                        "they were abandoned (await every ctx call)"
                    )
                outcome: dict[str, Any] = status["outcome"]
                return outcome
            for op in status["ops"]:
                self._forward(op, run, channel)
            if not status["inflight"]:
                raise _Stop(
                    Termination.ERROR,
                    "run() never settled: it awaits a promise that nothing can resolve",
                )
            replies = self._await_replies(run, channel)
            with self._in_wasm(store, run):
                qjs.call_for_string(dispatch, "s" + json.dumps(replies, separators=(",", ":")))

    @staticmethod
    def _forward(op: Any, run: _Run, channel: Channel) -> None:
        if (
            not isinstance(op, dict)
            or not isinstance(op.get("id"), int)
            or op.get("op") not in KNOWN_OPS
            or not isinstance(op.get("args"), dict)
        ):
            raise _Stop(Termination.ERROR, "the SDK produced a malformed host call")
        run.ops_sent += 1
        message = {"t": protocol.OP, "run": run.seq, "id": op["id"], "op": op["op"]}
        try:
            channel.send(message | {"args": op["args"]})
        except protocol.ProtocolError:
            raise _Stop(Termination.ERROR, f"a ctx.{op['op']} call is too large") from None

    @staticmethod
    def _await_replies(run: _Run, channel: Channel) -> list[dict[str, Any]]:
        """Block for one reply (until the deadline at most), then take whatever else is ready."""
        replies: list[dict[str, Any]] = []
        while True:
            wait = 0.0 if replies else run.wall_deadline - time.monotonic()
            message = channel.recv(max(0.0, wait))
            if message is None:
                if replies:
                    return replies
                raise _Stop(Termination.TIMEOUT, run.timeout_message())
            if message.get("run") != run.seq:
                continue
            if message["t"] == protocol.ABORT:
                raise _Stop(Termination(message["termination"]), str(message["message"]))
            if message["t"] != protocol.REPLY:
                raise protocol.ProtocolError(f"unexpected {message['t']!r} during a run")
            replies.append(
                {
                    "id": message["id"],
                    "ok": message["ok"],
                    "value": message.get("value"),
                    "error": message.get("error"),
                }
            )

    def _salvage(
        self, qjs: QuickJS | None, dispatch: JSValue | None, store: wasmtime.Store, run: _Run
    ) -> dict[str, Any] | None:
        """Logs and state from the SDK, even after a trap (the store is discarded right after).

        Runs under its own short epoch deadline and a raised heap limit, so a run that died of
        an exhausted heap or an endless loop still reports what it logged.
        """
        if qjs is None or dispatch is None:
            return None
        try:
            store.set_epoch_deadline(max(2, math.ceil(SALVAGE_MS / 1000 / self._tick)))
            qjs.set_memory_limit(run.limits["memory_mb"] * MIB + MEMORY_HEADROOM_MB * MIB // 2)
            report: dict[str, Any] = json.loads(qjs.call_for_string(dispatch, "f"))
        except (
            wasmtime.Trap,
            wasmtime.WasmtimeError,
            JSException,
            MemoryError,
            GuestPointerError,
            ValueError,
        ):
            run.notes.append("logs and state were lost: the sandbox could not report them")
            return None
        return report

    @staticmethod
    def _classify_trap(trap: wasmtime.Trap, run: _Run) -> tuple[Termination, str]:
        code = trap.trap_code
        if code is wasmtime.TrapCode.INTERRUPT:
            return Termination.TIMEOUT, run.timeout_message()
        if code is wasmtime.TrapCode.STACK_OVERFLOW:
            return Termination.ERROR, "InternalError: stack overflow (wasm stack exhausted)"
        name = code.name if code is not None else "unknown"
        return Termination.ERROR, f"the sandbox trapped ({name})"


def _error_line(error: dict[str, str]) -> str:
    name, message = error.get("name", "Error"), error.get("message", "")
    return f"{name}: {message}" if message else name


def _thrown_oom(error: dict[str, str] | None) -> bool:
    return error is not None and (error.get("name"), error.get("message")) == (
        "InternalError",
        "out of memory",
    )
