"""Hostile functions: each ends with the right reason, and the pool stays healthy."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from chronoflow_executor_function.sandbox import (
    EngineSettings,
    FunctionResult,
    Limits,
    SandboxError,
    SandboxPool,
    Termination,
    compiled,
)
from chronoflow_executor_function.sandbox.process import spawn_worker
from chronoflow_executor_function.sandbox.testing import Harness

Show = Callable[[FunctionResult], str]
PoolFactory = Callable[..., Awaitable[SandboxPool]]

HOSTILE_LIMITS = Limits(timeout_ms=400, memory_mb=32, max_http=2, max_messages=2)
BIG_LIMITS = Limits(timeout_ms=2000, memory_mb=128, max_http=2, max_messages=2)


@dataclass(frozen=True)
class Case:
    id: str
    code: str
    termination: Termination
    message: str
    """A substring of the run's error message."""
    whole_module: bool = False


def _case(
    id: str, body: str, termination: Termination, message: str, *, whole: bool = False
) -> Case:
    return Case(id, body, termination, message, whole)


CASES = [
    _case("busy loop", "while (true) {}", Termination.TIMEOUT, "timeoutMs exceeded (400 ms)"),
    _case("microtask loop", "for (;;) await null;", Termination.TIMEOUT, "timeoutMs exceeded"),
    _case(
        "promise chain",
        "const spin = () => Promise.resolve().then(spin); spin(); await new Promise(() => {});",
        Termination.TIMEOUT,
        "timeoutMs exceeded",
    ),
    _case(
        "regex backtracking",
        "return /(a+)+b/.test('a'.repeat(40));",
        Termination.TIMEOUT,
        "timeoutMs exceeded",
    ),
    _case(
        "memory bomb",
        "const keep = []; for (;;) keep.push(new Array(1e5).fill(7));",
        Termination.MEMORY,
        "memoryMb exceeded (32 MiB): InternalError: out of memory",
    ),
    _case(
        "memory bomb that catches OOM and retries",
        """
        let keep = [];
        for (;;) {
          try { keep.push(new Uint8Array(1 << 20)); }
          catch (e) { keep = keep.slice(keep.length >> 1); }
        }
        """,
        # Out-of-memory errors are catchable: the CPU limit is the backstop.
        Termination.TIMEOUT,
        "timeoutMs exceeded (400 ms); the heap had reached memoryMb (32 MiB)",
    ),
    _case(
        "typed array bomb",
        "const keep = []; for (;;) keep.push(new Float64Array(1e6));",
        Termination.MEMORY,
        "out of memory",
    ),
    _case(
        "200k-deep recursion",
        "function f(n) { return n === 0 ? 0 : 1 + f(n - 1); } return f(200000);",
        Termination.ERROR,
        "RangeError: Maximum call stack size exceeded",
    ),
    _case(
        "deeply nested JSON",
        "return JSON.parse('['.repeat(100000));",
        Termination.ERROR,
        "stack overflow",
    ),
    _case(
        "ArrayBuffer(2**31)",
        "return new ArrayBuffer(2 ** 31).byteLength;",
        Termination.ERROR,
        "RangeError: invalid array buffer length",
    ),
    _case(
        "ArrayBuffer(2**30)",
        "return new ArrayBuffer(2 ** 30).byteLength;",
        Termination.MEMORY,
        "out of memory",
    ),
    _case("require", "return require('fs');", Termination.ERROR, "require is not defined"),
    _case("process", "return process.env;", Termination.ERROR, "process is not defined"),
    _case(
        "static import of std",
        "import * as std from 'std';\nexport default async () => std.getenv('HOME');",
        Termination.ERROR,
        "could not load module 'std'",
        whole=True,
    ),
    _case(
        "dynamic import of os",
        "const os = await import('os'); return os.exec(['id']);",
        Termination.ERROR,
        "could not load module 'os'",
    ),
    _case(
        "dynamic import of a file",
        "return (await import('/etc/passwd')).default;",
        Termination.ERROR,
        "could not load module '/etc/passwd'",
    ),
    _case(
        "std and os globals",
        "return [typeof std, typeof os, typeof scriptArgs, typeof print].join() + std.x;",
        Termination.ERROR,
        "std is not defined",
    ),
    _case(
        "fetch",
        "return await fetch('http://127.0.0.1/');",
        Termination.ERROR,
        "fetch is not defined",
    ),
    _case(
        "WebAssembly",
        "return WebAssembly.compile(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));",
        Termination.ERROR,
        "WebAssembly is not defined",
    ),
    _case("overriding ctx.http", "ctx.http = { get: () => 1 };", Termination.ERROR, "read-only"),
    _case(
        "overriding ctx.http.get",
        "ctx.http.get = async () => ({ data: [] });",
        Termination.ERROR,
        "'get' is read-only",
    ),
    _case(
        "maxHttp + 1",
        "for (let i = 0; i < 3; i++) await ctx.http.get('@BASE@/echo');",
        Termination.QUOTA,
        "maxHttp exceeded (2)",
    ),
    _case(
        "maxHttp + 1, caught",
        "for (let i = 0; i < 3; i++) { try { await ctx.http.get('@BASE@/echo'); } catch (e) {} }",
        Termination.QUOTA,
        "maxHttp exceeded (2)",
    ),
    _case(
        "maxMessages + 1 at once",
        "await Promise.all([1, 2, 3].map((i) => ctx.message.send({ to: '+55', text: '' + i })));",
        Termination.QUOTA,
        "maxMessages exceeded (2)",
    ),
    _case(
        "unallowlisted env",
        "return ctx.env('DATABASE_URL');",
        Termination.ERROR,
        'ctx.env: "DATABASE_URL" is not an allowlisted variable',
    ),
    _case("sleep past the deadline", "await ctx.sleep(60000);", Termination.TIMEOUT, "timeoutMs"),
    _case(
        "slow host call past the deadline",
        "await ctx.http.get('@BASE@/slow');",
        Termination.TIMEOUT,
        "timeoutMs exceeded",
    ),
    _case(
        "error whose getters loop",
        "throw { get name() { for (;;) {} }, message: 'x' };",
        Termination.TIMEOUT,
        "timeoutMs exceeded",
    ),
    _case(
        "unawaited call flood",
        "for (let i = 0; i < 1000; i++) ctx.sleep(10); await ctx.sleep(10);",
        Termination.ERROR,
        "RangeError: too many ctx calls pending (100); await them first",
    ),
    _case(
        "oversized request body",
        "await ctx.http.post('@BASE@/echo', { body: 'x'.repeat(2 << 20) });",
        Termination.ERROR,
        "body exceeds maxHttpRequestBytes (1048576)",
    ),
    _case(
        "oversized header",
        "await ctx.http.get('@BASE@/echo', { headers: { 'X-Big': 'x'.repeat(17 << 20) } });",
        Termination.ERROR,
        "a ctx.http call is too large",
    ),
    _case(
        "SSRF to metadata",
        "return (await ctx.http.get('http://169.254.169.254/latest/meta-data/')).data;",
        Termination.ERROR,
        "egress denied: 169.254.169.254",
    ),
]


async def _attack(sandbox: Harness, case: Case) -> FunctionResult:
    limits = BIG_LIMITS if case.id.startswith("oversized") else HOSTILE_LIMITS
    if case.whole_module:
        return await sandbox.run(code=case.code, limits=limits)
    return await sandbox.run(case.code, limits=limits)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_hostile_code_ends_with_the_right_reason(
    sandbox: Harness, case: Case, show: Show
) -> None:
    result = await _attack(sandbox, case)
    assert result.termination is case.termination, show(result)
    assert result.error_message is not None
    assert case.message in result.error_message, show(result)
    # The pool is still healthy: the next run on it is correct.
    after = await sandbox.run("return 6 * 7;")
    assert (after.termination, after.value) == (Termination.COMPLETED, 42), show(after)


async def test_quota_abort_performs_exactly_the_allowed_calls(sandbox: Harness, show: Show) -> None:
    result = await sandbox.run(
        "ctx.log('start'); for (let i = 0; i < 5; i++) await ctx.http.get('@BASE@/echo');",
        limits=HOSTILE_LIMITS,
    )
    assert result.termination is Termination.QUOTA, show(result)
    assert result.error_message == "maxHttp exceeded (2)"
    assert result.http_calls == 2
    assert len(sandbox.server.requests) == 2
    assert result.logs == ("start",)


async def test_prototype_pollution_does_not_reach_the_host(sandbox: Harness, show: Show) -> None:
    result = await sandbox.run(
        """
        Object.prototype.toJSON = function () { return { method: 'POST', url: 'http://evil' }; };
        JSON.stringify = () => '{"id":1,"op":"http","args":{"url":"http://evil"}}';
        JSON.parse = () => ({ hijacked: true });
        String.prototype.slice = () => 'hijacked';
        String.prototype.toLowerCase = () => 'host';
        Promise.prototype.then = function () { throw new Error('then'); };
        globalThis.Promise = function () {};
        const r = await ctx.http.get('@BASE@/echo?x=1', { headers: { 'X-A': 'b' } });
        ctx.state.set('k', 'v');
        ctx.log('status', r.status);
        return 'done';
        """
    )
    # The function ran to the end; what the host received was exactly what it asked for.
    assert result.termination is Termination.COMPLETED, show(result)
    assert result.logs == ("status 200",)
    assert result.state == {"k": "v"}
    (request,) = sandbox.server.requests
    assert (request["method"], request["query"], request["headers"]["x-a"]) == (
        "GET",
        {"x": "1"},
        "b",
    )


async def test_pollution_of_engine_internals_fails_only_the_run(
    sandbox: Harness, show: Show
) -> None:
    # QuickJS's own JSON.stringify stores into arrays, so an index setter on Array.prototype
    # fires inside the SDK: the function breaks itself, and nothing reaches the host.
    result = await sandbox.run(
        """
        Object.defineProperty(Array.prototype, '0', { set() { throw new Error('trap'); } });
        await ctx.http.get('@BASE@/echo');
        """
    )
    assert result.termination is Termination.ERROR, show(result)
    assert result.error_message == "Error: trap"
    assert sandbox.server.requests == []
    after = await sandbox.run("return [1, 2].map((n) => n * 2);")
    assert after.value == [2, 4], show(after)


async def test_fifty_concurrent_hostile_runs_while_a_benign_function_keeps_working(
    sandbox: Harness, show: Show
) -> None:
    hostile = [c for c in CASES if c.termination is not Termination.COMPLETED]
    chosen = [hostile[i % len(hostile)] for i in range(50)]

    async def attack(case: Case) -> tuple[Case, FunctionResult]:
        return case, await _attack(sandbox, case)

    storm = asyncio.gather(*(attack(case) for case in chosen))
    benign_results: list[FunctionResult] = []
    counter = 0
    while not storm.done() or not benign_results:
        result = await sandbox.run(
            "const r = await ctx.http.get('@BASE@/users');"
            "ctx.state.set('n', (ctx.state.get('n') || 0) + r.data.length);"
            "return r.data.map((u) => u.name);",
            ctx_input=sandbox.input(state={"n": counter}),
        )
        assert result.termination is Termination.COMPLETED, show(result)
        assert result.value == ["Ana", "Bruno", "Carla"]
        assert result.state == {"n": counter + 3}
        counter += 3
        benign_results.append(result)
    for case, result in await storm:
        assert result.termination is case.termination, (case.id, show(result))
    assert len(sandbox.pool.worker_pids) == sandbox.pool.config.size


async def test_a_killed_worker_ends_only_its_run_and_is_replaced(
    make_pool: PoolFactory, sandbox: Harness
) -> None:
    pool = await make_pool(size=1)
    (pid,) = pool.worker_pids
    long_run = asyncio.create_task(
        sandbox.run(
            "await ctx.message.send({ to: '+55', text: 'started' }); await ctx.sleep(30000);",
            limits=Limits(timeout_ms=60000),
            pool=pool,
        )
    )
    await sandbox.bridge.message_sent.wait()
    os.kill(pid, signal.SIGKILL)
    result = await long_run
    assert result.termination is Termination.CRASHED
    assert result.error_message == "the sandbox worker died (killed by SIGKILL)"
    assert result.messages_sent == 1
    after = await sandbox.run("return 1;", pool=pool)
    assert after.value == 1
    assert pool.worker_pids != (pid,)
    assert pool.stats.workers_lost == 1


async def test_a_frozen_worker_is_killed_after_the_deadline(
    make_pool: PoolFactory, sandbox: Harness
) -> None:
    pool = await make_pool(size=1, kill_grace_s=0.2)
    (pid,) = pool.worker_pids
    run = asyncio.create_task(
        sandbox.run(
            "await ctx.message.send({ to: '+55', text: 'started' }); await ctx.sleep(5000);",
            limits=Limits(timeout_ms=300),
            pool=pool,
        )
    )
    await sandbox.bridge.message_sent.wait()
    os.kill(pid, signal.SIGSTOP)
    result = await run
    assert result.termination is Termination.TIMEOUT
    assert result.error_message == "timeoutMs exceeded (300 ms); the worker was killed"
    after = await sandbox.run("return 2;", pool=pool)
    assert after.value == 2


def _confinement(pid: int) -> tuple[str, set[bytes]]:
    with open(f"/proc/{pid}/limits", encoding="ascii") as limits:
        line = next(row for row in limits if row.startswith("Max address space"))
    with open(f"/proc/{pid}/environ", "rb") as environ:
        names = {item.split(b"=", 1)[0] for item in environ.read().split(b"\0") if item}
    return line.split()[3], names


async def test_workers_are_confined(sandbox: Harness) -> None:
    for pid in sandbox.pool.worker_pids:
        address_space, environment = _confinement(pid)
        assert address_space != "unlimited"
        assert environment == {b"PATH", b"LC_ALL", b"MALLOC_ARENA_MAX"}


async def test_a_worker_that_hits_its_own_bug_reports_it_and_exits(cache_dir: Path) -> None:
    settings = EngineSettings()
    worker = await spawn_worker(
        settings, compiled.prepare_module(cache_dir, settings), 2 << 30, start_timeout_s=60
    )
    try:
        await worker.send({"t": "run", "run": 1, "code": "", "input": "{}", "limits": {}})
        done = await worker.recv()
        assert (done["t"], done["run"], done["retire"]) == ("done", 1, True)
        assert done["result"]["error_message"] == "internal sandbox error (KeyError('memory_mb'))"
        assert await worker.proc.wait() == 1
    finally:
        await worker.stop(kill=True)


async def test_closing_the_pool_releases_whoever_waits_for_a_worker(
    make_pool: PoolFactory, sandbox: Harness
) -> None:
    pool = await make_pool(size=1)
    busy = asyncio.create_task(
        sandbox.run(
            "await ctx.message.send({ to: '+55', text: 'started' }); await ctx.sleep(30000);",
            limits=Limits(timeout_ms=60000),
            pool=pool,
        )
    )
    await sandbox.bridge.message_sent.wait()
    waiting = [asyncio.create_task(sandbox.run("return 1;", pool=pool)) for _ in range(3)]
    await pool.close()
    assert (await busy).termination is Termination.CRASHED
    for task in waiting:
        with pytest.raises(SandboxError, match="not running"):
            await task
