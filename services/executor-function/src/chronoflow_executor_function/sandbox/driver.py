"""The host-driven loop of one run inside a worker: its time budget, its steps, its host calls.

Each step runs QuickJS's pending jobs, asks the SDK for queued host calls (``dispatch("p")``),
sends them to the parent, waits for replies and hands them back (``dispatch("s...")``), until
the main promise has settled. Time in wasm is bounded by the store's epoch deadline, set from
what is left of the run before every entry; time waiting for the host by the wall clock.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import wasmtime

from chronoflow_executor_function.sandbox import protocol
from chronoflow_executor_function.sandbox.compiled import MEMORY_HEADROOM_MB
from chronoflow_executor_function.sandbox.model import MIB, Termination
from chronoflow_executor_function.sandbox.quickjs import (
    UNDEFINED,
    GuestPointerError,
    JSException,
    JSValue,
    QuickJS,
)

SALVAGE_MS = 100
"""How long the SDK may take to hand over logs and state after the run was cut short."""
KNOWN_OPS = frozenset({"http", "message", "sleep"})
USER_MODULE = "function.js"


class Channel(Protocol):
    """The worker's link to the parent."""

    def send(self, message: protocol.Message) -> None:
        """Send one message."""

    def recv(self, timeout: float | None) -> protocol.Message | None:
        """The next message, or ``None`` after ``timeout`` seconds."""


class Stop(Exception):  # noqa: N818 - control flow, not an error
    """Ends the run with a termination decided by the host."""

    def __init__(self, termination: Termination, message: str) -> None:
        super().__init__(message)
        self.termination = termination
        self.message = message


@dataclass
class RunBudget:
    """One run's limits and what it has used of them."""

    seq: int
    limits: dict[str, int]
    store: wasmtime.Store
    tick_s: float
    started: float
    wall_deadline: float
    cpu_budget: float
    js_seconds: float = 0.0
    epoch_start: int = 0
    notes: list[str] = field(default_factory=list)

    def remaining(self) -> float:
        """Seconds the run may still spend in wasm: the tighter of wall clock and CPU."""
        return min(self.wall_deadline - time.monotonic(), self.cpu_budget - self.js_seconds)

    def timeout_message(self) -> str:
        """Which of the two limits ran out."""
        cpu_first = self.cpu_budget - self.js_seconds <= self.wall_deadline - time.monotonic()
        if cpu_first and self.limits["cpu_ms"] < self.limits["timeout_ms"]:
            return f"CPU limit exceeded ({self.limits['cpu_ms']} ms of JavaScript)"
        return f"timeoutMs exceeded ({self.limits['timeout_ms']} ms)"

    @contextmanager
    def in_wasm(self) -> Iterator[None]:
        """Bound the enclosed wasm calls by what is left of the run, and account for them."""
        remaining = self.remaining()
        if remaining <= 0:
            raise Stop(Termination.TIMEOUT, self.timeout_message())
        self.store.set_epoch_deadline(max(1, math.ceil(remaining / self.tick_s)))
        began = time.perf_counter()
        try:
            yield
        finally:
            self.js_seconds += time.perf_counter() - began


def start_module(qjs: QuickJS, start: JSValue, code: str) -> JSValue:
    """Compile and evaluate the user's module and start ``run(ctx)``: the SDK's dispatch."""
    try:
        module = qjs.compile_module(code, USER_MODULE)
        evaluated, namespace = qjs.evaluate_module(module)
    except JSException as exc:
        # A syntax or import error: the SDK reports it like any other thrown error.
        return qjs.call(start, [UNDEFINED, exc.value])
    return qjs.call(start, [namespace, evaluated])


def drive(qjs: QuickJS, dispatch: JSValue, run: RunBudget, channel: Channel) -> dict[str, Any]:
    """Step the run until ``run()`` settles; its outcome as the SDK reports it."""
    while True:
        with run.in_wasm():
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
            _forward(op, run, channel)
        if not status["inflight"]:
            raise Stop(
                Termination.ERROR,
                "run() never settled: it awaits a promise that nothing can resolve",
            )
        replies = _await_replies(run, channel)
        with run.in_wasm():
            qjs.call_for_string(dispatch, "s" + json.dumps(replies, separators=(",", ":")))


def _forward(op: Any, run: RunBudget, channel: Channel) -> None:
    if (
        not isinstance(op, dict)
        or not isinstance(op.get("id"), int)
        or op.get("op") not in KNOWN_OPS
        or not isinstance(op.get("args"), dict)
    ):
        raise Stop(Termination.ERROR, "the SDK produced a malformed host call")
    message = {"t": protocol.OP, "run": run.seq, "id": op["id"], "op": op["op"]}
    try:
        channel.send(message | {"args": op["args"]})
    except protocol.ProtocolError:
        raise Stop(Termination.ERROR, f"a ctx.{op['op']} call is too large") from None


def _await_replies(run: RunBudget, channel: Channel) -> list[dict[str, Any]]:
    """Block for one reply (until the deadline at most), then take whatever else is ready."""
    replies: list[dict[str, Any]] = []
    while True:
        wait = 0.0 if replies else run.wall_deadline - time.monotonic()
        message = channel.recv(max(0.0, wait))
        if message is None:
            if replies:
                return replies
            raise Stop(Termination.TIMEOUT, run.timeout_message())
        if message.get("run") != run.seq:
            continue
        if message["t"] == protocol.ABORT:
            raise Stop(Termination(message["termination"]), str(message["message"]))
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


def salvage(qjs: QuickJS | None, dispatch: JSValue | None, run: RunBudget) -> dict[str, Any] | None:
    """Logs and state from the SDK, even after a trap (the store is discarded right after).

    Runs under its own short epoch deadline and a raised heap limit, so a run that died of an
    exhausted heap or an endless loop still reports what it logged.
    """
    if qjs is None or dispatch is None:
        return None
    try:
        run.store.set_epoch_deadline(max(2, math.ceil(SALVAGE_MS / 1000 / run.tick_s)))
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
