"""The sandbox's parts on their own: wasm rewrite, module cache, protocol, validation, results."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from hypothesis import given
from hypothesis import strategies as st

from chronoflow_contracts.functions import FunctionLimits
from chronoflow_executor_function.sandbox import (
    ChronoInfo,
    EngineSettings,
    FunctionInput,
    Limits,
    Termination,
    WasmImageError,
    compiled,
    fastcall,
    ops,
    outcome,
    protocol,
    quickjs,
    wasm_image,
)
from chronoflow_executor_function.sandbox.engine import Sandbox

# ---- the wasm image


def test_the_rewrite_is_pinned_and_exports_the_c_api() -> None:
    image = wasm_image.build_image()
    module = wasmtime.Module(wasmtime.Engine(), image)
    compiled.check_exports(module)
    names = {export.name for export in module.exports}
    assert set(wasm_image.EXPORTED_API) <= names
    assert {"memory", "_initialize", "malloc", "free"} <= names


def test_any_other_input_is_refused(tmp_path: Path) -> None:
    tampered = bytearray(wasm_image.reactor_path().read_bytes())
    tampered[-1] ^= 0xFF
    path = tmp_path / "qjs.wasm"
    path.write_bytes(bytes(tampered))
    with pytest.raises(WasmImageError, match="does not match its pinned sha256"):
        wasm_image.build_image(path)


def test_export_functions_refuses_unknown_and_duplicate_names() -> None:
    wasm = wasm_image.reactor_path().read_bytes()
    with pytest.raises(WasmImageError, match="JS_NoSuchThing: 0 functions"):
        wasm_image.export_functions(wasm, ["JS_NoSuchThing"])
    with pytest.raises(WasmImageError, match="malloc is already exported"):
        wasm_image.export_functions(wasm, ["malloc"])
    with pytest.raises(WasmImageError, match="not a wasm"):
        wasm_image.export_functions(b"\x7fELF", ["JS_Eval"])


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_leb128_round_trips(value: int) -> None:
    encoded = wasm_image._uleb(value)
    assert wasm_image._read_uleb(encoded + b"\x00", 0) == (value, len(encoded))


# ---- the compiled-module cache


def test_the_module_is_compiled_once_and_reused(cache_dir: Path, tmp_path: Path) -> None:
    settings = EngineSettings()
    cached = compiled.prepare_module(cache_dir, settings)  # the session pool compiled it
    copy = tmp_path / cached.name
    shutil.copyfile(cached, copy)
    stamp = copy.stat().st_mtime_ns
    assert compiled.prepare_module(tmp_path, settings) == copy
    assert copy.stat().st_mtime_ns == stamp
    assert compiled.module_path(tmp_path, EngineSettings(max_memory_mb=128)) != copy


def test_a_corrupt_cache_entry_is_rebuilt(tmp_path: Path) -> None:
    settings = EngineSettings()
    path = compiled.module_path(tmp_path, settings)
    path.write_bytes(b"not a compiled module")
    assert compiled.prepare_module(tmp_path, settings) == path
    compiled.load_module(wasmtime.Engine(compiled.build_config(settings)), path)


def test_engine_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="wasm_stack_kb"):
        EngineSettings(wasm_stack_kb=4096)
    with pytest.raises(ValueError, match="epoch_tick_ms"):
        EngineSettings(epoch_tick_ms=0)


# ---- limits


def test_limits() -> None:
    limits = Limits.from_function_limits(FunctionLimits(timeout_ms=3000, max_http=5), cpu_ms=9000)
    assert (limits.timeout_ms, limits.max_http, limits.memory_mb) == (3000, 5, 64)
    assert limits.to_wire()["cpu_ms"] == 3000  # capped by the deadline
    assert Limits(cpu_ms=100).to_wire()["cpu_ms"] == 100
    with pytest.raises(ValueError, match="negative"):
        Limits(max_http=-1)
    with pytest.raises(ValueError, match="js_stack_kb"):
        Limits(js_stack_kb=4096)


# ---- the pipe protocol


def test_frames_round_trip_across_partial_writes() -> None:
    read_fd, write_fd = os.pipe()
    try:
        reader = protocol.FrameReader(read_fd)
        assert reader.recv(0) is None
        frame = protocol.encode({"t": "op", "text": "olá \ud800"})
        os.write(write_fd, frame[:3])
        assert reader.recv(0.01) is None
        os.write(write_fd, frame[3:] + protocol.encode({"t": "done"}))
        assert reader.recv(1) == {"t": "op", "text": "olá \ud800"}
        assert reader.recv(1) == {"t": "done"}
        os.close(write_fd)
        with pytest.raises(EOFError):
            reader.recv(1)
    finally:
        os.close(read_fd)


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1, 2]", b'{"no": "type"}'],
    ids=["not json", "not an object", "untyped"],
)
def test_malformed_frames_are_refused(payload: bytes) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(payload)


def test_oversized_frames_are_refused() -> None:
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, (protocol.MAX_FRAME + 1).to_bytes(4, "big"))
        with pytest.raises(protocol.ProtocolError, match="exceeds"):
            protocol.FrameReader(read_fd).recv(1)
    finally:
        os.close(read_fd)
        os.close(write_fd)


# ---- host-side validation of what a worker asks for


def _http(**overrides: Any) -> dict[str, Any]:
    return {
        "method": "GET",
        "url": "https://example.com/x",
        "headers": {},
        "body": None,
    } | overrides


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (_http(method="TRACE"), "unsupported method"),
        (_http(url="ftp://example.com/"), "only http and https"),
        (_http(url="http:///nohost"), "only http and https"),
        (_http(url="https://example.com/a b"), "whitespace or control"),
        (_http(url=42), "url must be"),
        (_http(headers={"Host": "internal"}), "set by the client"),
        (_http(headers={"X-A": "b\r\nInjected: 1"}), "line break"),
        (_http(headers={"bad header": "x"}), "invalid header"),
        (_http(headers={"x": 1}), "invalid header"),
        (_http(body={"not": "a string"}), "body must be a string"),
        (_http(body="x" * 2000), "maxHttpRequestBytes"),
    ],
)
def test_bad_http_calls_are_refused(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ops.OpRejected, match=message):
        ops.parse_http(args, Limits(max_http_request_bytes=1000))


def test_good_http_calls_are_normalised() -> None:
    call = ops.parse_http(
        _http(method="POST", headers={"Content-Type": "application/json"}, body="{}"), Limits()
    )
    assert call == ops.HttpCall(
        "POST", "https://example.com/x", {"content-type": "application/json"}, b"{}"
    )


@pytest.mark.parametrize(
    "args", [{"to": "", "text": "x"}, {"to": "+55", "text": 1}, {"to": "+55", "text": "x" * 20}]
)
def test_bad_messages_are_refused(args: dict[str, Any]) -> None:
    with pytest.raises(ops.OpRejected):
        ops.parse_message(args, Limits(max_message_chars=10))


@pytest.mark.parametrize("ms", [-1, float("nan"), float("inf"), "10", True, None])
def test_bad_sleeps_are_refused(ms: object) -> None:
    with pytest.raises(ops.OpRejected):
        ops.parse_sleep({"ms": ms})


# ---- results


def _input(state: dict[str, Any] | None = None) -> FunctionInput:
    return FunctionInput(
        chrono=ChronoInfo(id="c", name="n", scheduled_for=datetime(2026, 1, 1, tzinfo=UTC)),
        state=state or {},
    )


def test_clean_replaces_what_postgres_cannot_store() -> None:
    assert outcome.clean({"k\x00": ["a\ud800b", 1, None, {"x": "\x00"}]}) == {
        "k\ufffd": ["a\ufffdb", 1, None, {"x": "\ufffd"}]
    }


def test_changed_keys_compare_json_values() -> None:
    payload = {
        "termination": "completed",
        "report": {
            "logs": [],
            "logsDropped": 0,
            "state": {"same": 1, "flag": 1, "new": [1]},
            "changed": ["same", "flag", "new", "gone"],
        },
    }
    result = outcome.build_result(
        payload,
        _input({"same": 1, "flag": True, "gone": "x"}),
        Limits(),
        http_calls=0,
        messages_sent=0,
        duration_ms=1.0,
    )
    assert result.changed_keys == {"flag", "new", "gone"}
    assert result.state_patch() == ({"flag": 1, "new": [1]}, frozenset({"gone"}))


def test_results_are_capped_and_overridable() -> None:
    payload = {
        "termination": "completed",
        "value": "x" * 200,
        "report": {"logs": ["a" * 1000, "b" * 1000], "logsDropped": 2, "state": {}, "changed": []},
        "notes": ["a note"],
    }
    result = outcome.build_result(
        payload,
        _input(),
        Limits(max_result_bytes=100, max_log_bytes=10),
        http_calls=3,
        messages_sent=0,
        duration_ms=1.0,
        override=(Termination.QUOTA, "maxHttp exceeded (3)"),
    )
    assert (result.termination, result.error_message) == (Termination.QUOTA, "maxHttp exceeded (3)")
    assert (result.value, result.value_truncated) == (None, True)
    assert result.logs_truncated
    assert result.logs[-2:] == (
        "[chronoflow] 3 log line(s) cut: maxLogBytes (10)",
        "[chronoflow] a note",
    )
    assert json.loads(json.dumps(result.to_json()))["termination"] == "quota"


# ---- the engine in-process, with and without the fast call path


class _ScriptedChannel:
    """Answers every host call at once with a canned value."""

    def __init__(self) -> None:
        self.sent: list[protocol.Message] = []
        self._replies: list[protocol.Message] = []

    def send(self, message: protocol.Message) -> None:
        self.sent.append(message)
        value = {"status": 200, "headers": {}, "body": '{"n": 2}', "truncated": False}
        self._replies.append(
            {"t": "reply", "run": message["run"], "id": message["id"], "ok": True, "value": value}
        )

    def recv(self, timeout: float | None) -> protocol.Message | None:
        return self._replies.pop(0) if self._replies else None


@pytest.fixture(scope="module")
def engine(cache_dir: Path) -> Iterator[Sandbox]:
    settings = EngineSettings()
    path = compiled.prepare_module(cache_dir, settings)
    sandbox = Sandbox(settings, path)
    yield sandbox
    sandbox.close()


@pytest.mark.parametrize("fast", [True, False], ids=["fast calls", "public calls"])
def test_the_engine_runs_a_function(
    engine: Sandbox, fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fastcall, "ENABLED", fast)
    channel = _ScriptedChannel()
    job = {
        "run": 7,
        "code": "export default async function run(ctx) {"
        " const r = await ctx.http.get('https://x/');"
        " ctx.state.set('n', r.data.n); return r.status; }",
        "input": outcome.sdk_input(_input(), Limits()),
        "limits": Limits().to_wire(),
    }
    result = engine.execute(job, channel)
    assert (result["termination"], result["value"]) == ("completed", 200)
    assert result["report"]["state"] == {"n": 2}
    assert [m["op"] for m in channel.sent] == ["http"]


def test_the_fast_call_path_is_available_on_the_pinned_wasmtime(engine: Sandbox) -> None:
    store = wasmtime.Store(engine.engine)
    store.set_wasi(wasmtime.WasiConfig())
    instance = engine._pre.instantiate(store)
    func = instance.exports(store)["malloc"]
    assert isinstance(func, wasmtime.Func)
    assert fastcall.direct_caller(store, func, fastcall.SIGNATURES["malloc"]) is not None
    store.close()


def test_the_host_refuses_guest_pointers_outside_linear_memory(engine: Sandbox) -> None:
    store = wasmtime.Store(engine.engine)
    store.set_wasi(wasmtime.WasiConfig())
    store.set_epoch_deadline(1000)
    qjs = quickjs.QuickJS.restore(store, engine._pre.instantiate(store), engine._snapshot)
    size = qjs.memory.data_len(store)
    with pytest.raises(quickjs.GuestPointerError):
        qjs._base(size - 2, 4)
    with pytest.raises(quickjs.GuestPointerError):
        qjs._base(-1, 1)
    store.close()
