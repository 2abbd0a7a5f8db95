"""The SDK's input, and a FunctionResult built from what a worker reported (checked, capped).

Strings leaving the sandbox have NUL and lone UTF-16 surrogates replaced by U+FFFD: the result
is stored as JSON in Postgres, which accepts neither.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from chronoflow_executor_function.sandbox.model import (
    FunctionInput,
    FunctionResult,
    JsError,
    JsonValue,
    Limits,
    Termination,
    Usage,
)

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_NOTE = "[chronoflow] "


def sdk_input(ctx_input: FunctionInput, limits: Limits) -> str:
    """The JSON the SDK's ``install`` receives."""
    chrono = ctx_input.chrono
    scheduled = chrono.scheduled_for.astimezone(UTC).isoformat(timespec="milliseconds")
    payload = {
        "seed": [int.from_bytes(os.urandom(4), "little") for _ in range(4)],
        "limits": {
            "max_log_bytes": limits.max_log_bytes,
            "max_result_bytes": limits.max_result_bytes,
            "max_state_bytes": limits.max_state_bytes,
            "max_http_request_bytes": limits.max_http_request_bytes,
            "max_message_chars": limits.max_message_chars,
            "max_pending_calls": limits.max_pending_calls,
        },
        "state": {key: _dump(value) for key, value in ctx_input.state.items()},
        "env": dict(ctx_input.env),
        "extras": dict(ctx_input.extras),
        "chrono": {
            "id": chrono.id,
            "name": chrono.name,
            "scheduledFor": scheduled.replace("+00:00", "Z"),
            "attempt": chrono.attempt,
        },
    }
    return _dump(payload)


def _dump(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False, sort_keys=True)


def clean(value: Any) -> JsonValue:
    """``value`` with unstorable characters replaced, recursively (keys included)."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value) if _UNSTORABLE.search(value) else value
    if isinstance(value, list):
        return [clean(item) for item in value]
    if isinstance(value, dict):
        return {str(clean(str(k))): clean(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float):
        return value
    return None


def _text(value: Any, cap: int = 64 * 1024) -> str:
    cleaned = clean(str(value))
    assert isinstance(cleaned, str)
    return cleaned[:cap]


def _logs(
    report: Mapping[str, Any] | None, notes: list[str], limits: Limits
) -> tuple[list[str], bool]:
    lines: list[str] = []
    dropped = 0
    if report is not None:
        budget = limits.max_log_bytes + 1024
        for line in report.get("logs", []):
            if budget <= 0:
                dropped += 1
                continue
            text = _text(line, budget)
            if len(text) < len(str(line)):
                dropped += 1
            budget -= len(text)
            lines.append(text)
        dropped += int(report.get("logsDropped", 0))
    if dropped:
        lines.append(f"{_NOTE}{dropped} log line(s) cut: maxLogBytes ({limits.max_log_bytes})")
    lines.extend(_NOTE + _text(note, 1024) for note in notes[:10])
    return lines, bool(dropped)


def _state(
    report: Mapping[str, Any] | None, initial: Mapping[str, JsonValue], limits: Limits
) -> tuple[dict[str, JsonValue], frozenset[str]]:
    if report is None or not isinstance(report.get("state"), dict):
        return dict(initial), frozenset()
    state = clean(report["state"])
    assert isinstance(state, dict)
    if len(_dump(state)) > limits.max_state_bytes * 2 + 1024:
        return dict(initial), frozenset()
    changed: set[str] = set()
    for key in report.get("changed", []):
        if not isinstance(key, str):
            continue
        before = _dump(initial[key]) if key in initial else None
        after = _dump(state[key]) if key in state else None
        if before != after:
            changed.add(key)
    return state, frozenset(changed)


def build_result(
    payload: Mapping[str, Any],
    ctx_input: FunctionInput,
    limits: Limits,
    *,
    http_calls: int,
    messages_sent: int,
    duration_ms: float,
    override: tuple[Termination, str] | None = None,
) -> FunctionResult:
    """The FunctionResult for a worker's ``done`` payload (``override``: the host's verdict)."""
    termination = Termination(payload["termination"])
    message = payload.get("error_message")
    if override is not None:
        termination, message = override
    raw_error = payload.get("error")
    error = None
    if isinstance(raw_error, dict):
        error = JsError(
            name=_text(raw_error.get("name", "Error"), 256),
            message=_text(raw_error.get("message", "")),
            stack=_text(raw_error.get("stack", "")),
        )
    report = payload.get("report")
    notes = [str(n) for n in payload.get("notes", [])]
    logs, logs_truncated = _logs(report, notes, limits)
    state, changed = _state(report, ctx_input.state, limits)
    value = clean(payload.get("value"))
    value_truncated = bool(payload.get("value_truncated"))
    if len(_dump(value)) > limits.max_result_bytes:
        value, value_truncated = None, True
    usage = payload.get("usage") or {}
    return FunctionResult(
        termination=termination,
        error_message=None if message is None else _text(message, 4096),
        error=error,
        value=value,
        value_truncated=value_truncated,
        logs=tuple(logs),
        logs_truncated=logs_truncated,
        state=state,
        changed_keys=changed,
        http_calls=http_calls,
        messages_sent=messages_sent,
        usage=Usage(
            duration_ms=duration_ms,
            js_ms=float(usage.get("js_ms", 0.0)),
            fuel=int(usage.get("fuel", 0)),
            epoch_ticks=int(usage.get("epoch_ticks", 0)),
            memory_bytes=int(usage.get("memory_bytes", 0)),
        ),
    )


def host_failure(
    termination: Termination,
    message: str,
    ctx_input: FunctionInput,
    *,
    http_calls: int,
    messages_sent: int,
    duration_ms: float,
) -> FunctionResult:
    """The result of a run whose worker died or stopped answering (no logs survive)."""
    return FunctionResult(
        termination=termination,
        error_message=message,
        state=dict(ctx_input.state),
        http_calls=http_calls,
        messages_sent=messages_sent,
        usage=Usage(duration_ms=duration_ms),
    )
