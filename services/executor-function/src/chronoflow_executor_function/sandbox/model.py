"""What a sandboxed run takes (code, input, limits) and what it gives back (a FunctionResult)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from chronoflow_contracts.functions import FunctionLimits

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None

KIB = 1024
MIB = 1024 * KIB
MAX_JS_STACK_KB = 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """What one run may use. The first four are the user-facing ``functionLimits``."""

    timeout_ms: int = 10_000
    """Wall-clock deadline of the whole run, host time (HTTP, sleeps) included."""
    memory_mb: int = 64
    """QuickJS heap limit; the wasm linear memory is capped a few MiB above it."""
    max_http: int = 10
    max_messages: int = 50
    cpu_ms: int | None = None
    """Time spent executing JavaScript; ``None`` means ``timeout_ms``."""
    js_stack_kb: int = 256
    """JavaScript stack (about 800 frames of plain recursion); deeper ends in a RangeError."""
    max_log_bytes: int = 64 * KIB
    max_result_bytes: int = 64 * KIB
    max_state_bytes: int = 256 * KIB
    max_http_request_bytes: int = 1 * MIB
    max_http_response_bytes: int = 1 * MIB
    max_message_chars: int = 16 * KIB
    max_pending_calls: int = 100
    """ctx calls awaiting the host at once; one more throws a RangeError."""

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative")
        if self.timeout_ms < 1 or self.memory_mb < 1:
            raise ValueError("timeout_ms and memory_mb must be positive")
        if not 16 <= self.js_stack_kb <= MAX_JS_STACK_KB:
            # QuickJS checks against this limit; the reactor's shadow stack is 2 MiB.
            raise ValueError(f"js_stack_kb must be within 16..{MAX_JS_STACK_KB}")

    @property
    def effective_cpu_ms(self) -> int:
        """The JavaScript CPU budget: ``cpu_ms`` capped by the run's deadline."""
        return self.timeout_ms if self.cpu_ms is None else min(self.cpu_ms, self.timeout_ms)

    @classmethod
    def from_function_limits(cls, limits: FunctionLimits, **overrides: Any) -> Limits:
        """The sandbox limits of a function's contract ``FunctionLimits``."""
        return cls(
            timeout_ms=limits.timeout_ms,
            memory_mb=limits.memory_mb,
            max_http=limits.max_http,
            max_messages=limits.max_messages,
            **overrides,
        )

    def to_wire(self) -> dict[str, int]:
        """The limits as JSON for the worker (``cpu_ms`` resolved)."""
        wire = {name: getattr(self, name) for name in self.__slots__ if name != "cpu_ms"}
        wire["cpu_ms"] = self.effective_cpu_ms
        return wire


@dataclass(frozen=True, slots=True)
class ChronoInfo:
    """``ctx.chrono``: which occurrence of which chrono this run is."""

    id: str
    name: str
    scheduled_for: datetime
    attempt: int = 1

    def __post_init__(self) -> None:
        if self.scheduled_for.tzinfo is None:
            raise ValueError("scheduled_for must be timezone-aware")


@dataclass(frozen=True, slots=True)
class FunctionInput:
    """Everything the function sees besides its code."""

    chrono: ChronoInfo
    extras: Mapping[str, JsonValue] = field(default_factory=dict)
    state: Mapping[str, JsonValue] = field(default_factory=dict)
    """The function's persisted state when the run starts (``ctx.state.get``)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """The allowlisted variables ``ctx.env`` may read; any other key throws."""


class Termination(enum.StrEnum):
    """Why a run ended."""

    COMPLETED = "completed"
    TIMEOUT = "timeout"
    """``timeoutMs`` (wall clock) or the CPU budget ran out."""
    MEMORY = "memory"
    """The heap limit was hit and the run did not recover from it."""
    QUOTA = "quota"
    """``maxHttp`` or ``maxMessages`` was exceeded."""
    ERROR = "error"
    """The function threw, could not load, or never settled."""
    CRASHED = "crashed"
    """The worker process running the sandbox died; only this run is lost."""


@dataclass(frozen=True, slots=True)
class JsError:
    """A JavaScript exception as the function threw it."""

    name: str
    message: str
    stack: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    """What the run consumed."""

    duration_ms: float = 0.0
    """Wall clock, as seen by the host, queueing for a worker excluded."""
    js_ms: float = 0.0
    """Time spent executing wasm (the CPU budget's measure)."""
    fuel: int = 0
    """Wasm instructions executed (wasmtime fuel): deterministic for the same code and input."""
    epoch_ticks: int = 0
    """Epoch ticks that elapsed during the run."""
    memory_bytes: int = 0
    """Size of the linear memory when the run ended (its high-water mark)."""


@dataclass(frozen=True, slots=True)
class FunctionResult:
    """The outcome of one run, ready to be recorded in ``ChronoRun.result``."""

    termination: Termination
    error_message: str | None = None
    """Why the run failed, in one line (``maxHttp exceeded (5)``, ``Error: boom``, ...)."""
    error: JsError | None = None
    value: JsonValue = None
    """The function's return value; ``None`` if it returned nothing or it was too large."""
    value_truncated: bool = False
    logs: tuple[str, ...] = ()
    logs_truncated: bool = False
    state: Mapping[str, JsonValue] = field(default_factory=dict)
    """The state at the end of the run (persist it only when ``ok``)."""
    changed_keys: frozenset[str] = frozenset()
    """Keys written during the run whose value differs from the starting state; a key in here
    but missing from ``state`` was deleted. Apply only these onto the latest stored state."""
    http_calls: int = 0
    messages_sent: int = 0
    usage: Usage = field(default_factory=Usage)

    @property
    def ok(self) -> bool:
        """Whether the function ran to completion."""
        return self.termination is Termination.COMPLETED

    def state_patch(self) -> tuple[dict[str, JsonValue], frozenset[str]]:
        """``(keys to set with their values, keys to delete)`` for a compare-and-set merge."""
        upserts = {key: self.state[key] for key in self.changed_keys if key in self.state}
        deleted = frozenset(key for key in self.changed_keys if key not in self.state)
        return upserts, deleted

    def to_json(self) -> dict[str, JsonValue]:
        """The camelCase JSON stored as the run's ``result``."""
        logs: list[JsonValue] = list(self.logs)
        changed: list[JsonValue] = [*sorted(self.changed_keys)]
        return {
            "termination": self.termination.value,
            "errorMessage": self.error_message,
            "error": None
            if self.error is None
            else {
                "name": self.error.name,
                "message": self.error.message,
                "stack": self.error.stack,
            },
            "value": self.value,
            "valueTruncated": self.value_truncated,
            "logs": logs,
            "logsTruncated": self.logs_truncated,
            "changedKeys": changed,
            "httpCalls": self.http_calls,
            "messagesSent": self.messages_sent,
            "usage": {
                "durationMs": round(self.usage.duration_ms, 3),
                "jsMs": round(self.usage.js_ms, 3),
                "fuel": self.usage.fuel,
                "epochTicks": self.usage.epoch_ticks,
                "memoryBytes": self.usage.memory_bytes,
            },
        }
