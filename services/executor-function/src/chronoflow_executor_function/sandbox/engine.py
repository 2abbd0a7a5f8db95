"""A worker's engine: QuickJS booted once, then one fresh wasm store per run (worker side).

The engine is built with epoch interruption; a ticker thread bumps its epoch every
``epoch_tick_ms``, and each run's store gets a deadline from what is left of the run (see
``driver``). Every run starts from a snapshot of QuickJS with the SDK loaded, in a new store
that is closed when the run ends, so a store that trapped is never reused.
"""

from __future__ import annotations

import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

import wasmtime

from chronoflow_executor_function.sandbox import protocol
from chronoflow_executor_function.sandbox.compiled import (
    MEMORY_HEADROOM_MB,
    EngineSettings,
    build_config,
    load_module,
)
from chronoflow_executor_function.sandbox.driver import (
    Channel,
    RunBudget,
    Stop,
    drive,
    salvage,
    start_module,
)
from chronoflow_executor_function.sandbox.model import KIB, MIB, Termination
from chronoflow_executor_function.sandbox.quickjs import (
    EVAL_TYPE_GLOBAL,
    GuestPointerError,
    JSException,
    JSValue,
    QuickJS,
    Snapshot,
)

FUEL = 1 << 62
"""Fuel only meters (the CPU limit is the epoch): a budget no run can exhaust."""
HEAP_FULL_RATIO = 0.75
"""Linear-memory growth, as a share of the heap limit, taken as a sign the limit was reached
(growth stops short of it by the size of the allocation that failed)."""


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
        pristine_store = wasmtime.Store(self.engine)
        pristine_store.set_wasi(wasmtime.WasiConfig())
        try:
            pristine = QuickJS(pristine_store, self._pre.instantiate(pristine_store))
            pristine_image = bytes(pristine.memory.read(pristine_store))
        finally:
            pristine_store.close()
        store = wasmtime.Store(self.engine)
        store.set_wasi(wasmtime.WasiConfig())
        store.set_fuel(FUEL)
        store.set_epoch_deadline(1 << 32)
        try:
            qjs = QuickJS.boot(store, self._pre.instantiate(store))
            qjs.open_context()
            install = qjs.eval(sdk, "chronoflow:sdk", EVAL_TYPE_GLOBAL)
            return qjs.snapshot(install, pristine_image)
        finally:
            store.close()

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
        heap_limit = limits["memory_mb"] * MIB
        store = wasmtime.Store(self.engine)
        store.set_wasi(wasmtime.WasiConfig())
        store.set_limits(
            memory_size=heap_limit + MEMORY_HEADROOM_MB * MIB, instances=1, tables=1, memories=1
        )
        store.set_fuel(FUEL)
        now = time.monotonic()
        run = RunBudget(
            seq=job["run"],
            limits=limits,
            store=store,
            tick_s=self._tick,
            started=now,
            wall_deadline=now + limits["timeout_ms"] / 1000,
            cpu_budget=limits["cpu_ms"] / 1000,
            epoch_start=self.epoch,
        )
        try:
            return self._execute(job, run, channel)
        finally:
            # Free the store (and its address-space reservation) now: after a trap, reference
            # cycles through the traceback would otherwise keep it alive until a GC pass.
            store.close()

    def _execute(self, job: protocol.Message, run: RunBudget, channel: Channel) -> dict[str, Any]:
        limits, store = run.limits, run.store
        heap_limit = limits["memory_mb"] * MIB
        qjs: QuickJS | None = None
        dispatch: JSValue | None = None
        outcome: dict[str, Any] | None = None
        termination = Termination.ERROR
        message: str | None = None
        error: dict[str, str] | None = None
        sdk_failed = False
        try:
            with run.in_wasm():
                qjs = QuickJS.restore(store, self._pre.instantiate(store), self._snapshot)
                qjs.set_memory_limit(heap_limit)
                qjs.set_stack_size(limits["js_stack_kb"] * KIB)
                start = qjs.call_with_string(self._snapshot.entry, job["input"])
                dispatch = start_module(qjs, start, job["code"])
            outcome = drive(qjs, dispatch, run, channel)
        except Stop as stop:
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
        report = salvage(qjs, dispatch, run)
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

    @staticmethod
    def _classify_trap(trap: wasmtime.Trap, run: RunBudget) -> tuple[Termination, str]:
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
