"""The function SDK as user code sees it, through real workers and a local HTTP server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from chronoflow_executor_function.sandbox import FunctionResult, Limits, Termination
from chronoflow_executor_function.sandbox.testing import Harness

# The original product's example function, verbatim apart from the URL.
SEED_EXAMPLE = json.loads(
    (Path(__file__).parent / "seed_example.json").read_text(encoding="utf-8")
)["functionCode"]

Show = Callable[[FunctionResult], str]


async def test_seed_example_runs_and_its_counter_grows_across_runs(
    sandbox: Harness, show: Show
) -> None:
    code = SEED_EXAMPLE.replace("https://api.internal", "@BASE@")
    first = await sandbox.run(code=code, ctx_input=sandbox.input(extras={"segment": "overdue"}))
    assert first.termination is Termination.COMPLETED, show(first)
    assert sandbox.server.requests[0]["query"] == {"overdue": "true"}
    assert sandbox.bridge.messages == [
        ("+5511999999999", "Olá Ana, sua fatura vence hoje"),
        ("+5511888888888", "Olá Bruno, sua fatura vence hoje"),
        ("+5511777777777", "Olá Carla, sua fatura vence hoje"),
    ]
    assert first.state == {"lastCount": 3}
    assert first.changed_keys == {"lastCount"}
    assert first.logs == ("enviados 3",)
    assert (first.http_calls, first.messages_sent) == (1, 3)

    # The host persists the state on success and hands it to the next run.
    second = await sandbox.run(code=code, ctx_input=sandbox.input(state=dict(first.state)))
    assert second.termination is Termination.COMPLETED, show(second)
    assert second.state == {"lastCount": 6}
    assert len(sandbox.bridge.messages) == 6


async def test_http_verbs_json_bodies_headers_and_parsing(sandbox: Harness, show: Show) -> None:
    result = await sandbox.run(
        """
        const got = await ctx.http.get('@BASE@/echo?a=1', { headers: { 'X-Trace': 42 } });
        const posted = await ctx.http.post('@BASE@/echo', { json: { hello: 'world' } });
        const put = await ctx.http.put('@BASE@/echo', { body: 'raw text' });
        const patched = await ctx.http.patch('@BASE@/echo', { body: { n: 1 } });
        const deleted = await ctx.http.delete('@BASE@/echo?status=404');
        const text = await ctx.http.get('@BASE@/text');
        return {
          get: [got.status, got.ok, got.data.method, got.data.query.a, got.data.headers['x-trace']],
          post: [posted.data.body, posted.data.headers['content-type']],
          put: put.data.body, patch: patched.data.body,
          del: [deleted.status, deleted.ok, deleted.data.method],
          text: [text.data, text.headers['x-custom']],
        };
        """,
        limits=Limits(timeout_ms=5000, max_http=6),
    )
    assert result.termination is Termination.COMPLETED, show(result)
    assert result.value == {
        "get": [200, True, "GET", "1", "42"],
        "post": ['{"hello":"world"}', "application/json"],
        "put": "raw text",
        "patch": '{"n":1}',
        "del": [404, False, "DELETE"],
        "text": ["plain text, not JSON", "yes"],
    }
    assert result.http_calls == 6


async def test_http_argument_errors_are_catchable_and_clear(sandbox: Harness, show: Show) -> None:
    result = await sandbox.run(
        """
        const errors = [];
        for (const call of [
          () => ctx.http.get(42),
          () => ctx.http.post('@BASE@/echo', { name: 'axios style body' }),
          () => ctx.http.get('file:///etc/passwd'),
          () => ctx.http.get('@BASE@/echo', { headers: { Host: 'internal' } }),
        ]) {
          try { await call(); errors.push('no error'); } catch (e) { errors.push(e.message); }
        }
        return errors;
        """
    )
    assert result.termination is Termination.COMPLETED, show(result)
    assert result.value == [
        "ctx.http.get: url must be a string",
        'ctx.http.post: unknown option "name" (use { headers, json, body })',
        "ctx.http.get: only http and https URLs are allowed",
        "ctx.http.get: header 'host' is set by the client, not the function",
    ]
    assert sandbox.server.requests == []


async def test_http_policy_is_applied_by_the_host_bridge(sandbox: Harness, show: Show) -> None:
    result = await sandbox.run(
        """
        try { await ctx.http.get('http://169.254.169.254/latest/meta-data/'); }
        catch (e) { ctx.log(e.message); }
        await ctx.http.get('http://127.0.0.2:9/');
        """
    )
    assert result.termination is Termination.ERROR, show(result)
    assert result.logs[0] == "egress denied: 169.254.169.254 is not allowed"
    assert result.error_message == "Error: egress denied: 127.0.0.2 is not allowed"


async def test_large_http_response_is_truncated(sandbox: Harness, show: Show) -> None:
    result = await sandbox.run(
        "const r = await ctx.http.get('@BASE@/big'); return [r.truncated, r.data.length];",
        limits=Limits(timeout_ms=5000, max_http_response_bytes=1000),
    )
    assert result.termination is Termination.COMPLETED, show(result)
    assert result.value == [True, 1000]


async def test_messages_resolve_with_the_bridge_answer(sandbox: Harness, show: Show) -> None:
    result = await sandbox.run(
        """
        const receipt = await ctx.message.send({ to: '+551100', text: 'oi' });
        let refused = '';
        try { await ctx.message.send({ to: '', text: 'x' }); } catch (e) { refused = e.message; }
        return { receipt, refused };
        """
    )
    assert result.termination is Termination.COMPLETED, show(result)
    assert result.value == {
        "receipt": {"id": "msg-1", "to": "+551100"},
        "refused": "ctx.message.send: `to` must be a non-empty string",
    }
    assert result.messages_sent == 1


async def test_state_get_set_delete_and_changed_keys(sandbox: Harness, show: Show) -> None:
    result = await sandbox.run(
        """
        const list = ctx.state.get('list');
        list.push(4);                               // a copy: not written back by itself
        ctx.state.set('same', ctx.state.get('same')); // rewritten with the same value
        ctx.state.set('count', ctx.state.get('count') + 1);
        ctx.state.delete('gone');
        ctx.state.set('new', { nested: [true, null] });
        let bad = '';
        try { ctx.state.set('big', 10n); } catch (e) { bad = e.message; }
        return { seen: ctx.state.get('list'), keys: ctx.state.keys().sort(), bad };
        """,
        ctx_input=sandbox.input(
            state={"list": [1, 2, 3], "same": {"a": 1}, "count": 1, "gone": "x"}
        ),
    )
    assert result.termination is Termination.COMPLETED, show(result)
    assert result.value == {
        "seen": [1, 2, 3],
        "keys": ["count", "list", "new", "same"],
        "bad": "ctx.state.set: the value is not JSON-serializable "
        "(BigInt are forbidden in JSON.stringify)",
    }
    assert result.state == {
        "list": [1, 2, 3],
        "same": {"a": 1},
        "count": 2,
        "new": {"nested": [True, None]},
    }
    assert result.changed_keys == {"count", "gone", "new"}
    assert result.state_patch() == (
        {"count": 2, "new": {"nested": [True, None]}},
        frozenset({"gone"}),
    )


async def test_state_is_capped(sandbox: Harness, show: Show) -> None:
    result = await sandbox.run(
        "ctx.state.set('k', 'x'.repeat(2000));",
        limits=Limits(timeout_ms=5000, max_state_bytes=1000),
    )
    assert result.termination is Termination.ERROR, show(result)
    assert (
        result.error_message == "RangeError: ctx.state.set: state would exceed maxStateBytes (1000)"
    )
    assert result.state == {}


async def test_logs_are_formatted_and_capped(sandbox: Harness, show: Show) -> None:
    result = await sandbox.run(
        """
        ctx.log('a', 1, { b: [2] }, null, undefined, true);
        console.warn('careful');
        console.error(new TypeError('bad'));
        for (let i = 0; i < 1000; i++) ctx.log('line', i, 'x'.repeat(50));
        """,
        limits=Limits(timeout_ms=5000, max_log_bytes=2000),
    )
    assert result.termination is Termination.COMPLETED, show(result)
    assert result.logs[0] == 'a 1 {"b":[2]} null undefined true'
    assert result.logs[1] == "[warn] careful"
    assert result.logs[2].startswith("[error] TypeError: bad\n    at run (function.js:")
    assert result.logs_truncated
    assert result.logs[-1].startswith("[chronoflow] ")
    assert sum(len(line) for line in result.logs[:-1]) <= 2001


async def test_sleep_env_extras_and_chrono(sandbox: Harness, show: Show) -> None:
    result = await sandbox.run(
        """
        await ctx.sleep(20);
        let frozen = false;
        try { ctx.extras.segment = 'changed'; } catch (e) { frozen = e instanceof TypeError; }
        return { env: ctx.env('PUBLIC_URL'), extras: ctx.extras, frozen, chrono: ctx.chrono };
        """,
        ctx_input=sandbox.input(extras={"segment": "overdue"}, env={"PUBLIC_URL": "https://x"}),
    )
    assert result.termination is Termination.COMPLETED, show(result)
    assert result.value == {
        "env": "https://x",
        "extras": {"segment": "overdue"},
        "frozen": True,
        "chrono": {
            "id": "chrono-1",
            "name": "Cobrança atrasados",
            "scheduledFor": "2026-03-01T07:30:00.000Z",
            "attempt": 2,
        },
    }


async def test_return_values(sandbox: Harness, show: Show) -> None:
    plain = await sandbox.run("return { n: 1, s: 'é', list: [1.5, null] };")
    assert plain.value == {"n": 1, "s": "é", "list": [1.5, None]}, show(plain)
    nothing = await sandbox.run("ctx.log('no return');")
    assert (nothing.termination, nothing.value) == (Termination.COMPLETED, None)
    huge = await sandbox.run(
        "return 'x'.repeat(5000);", limits=Limits(timeout_ms=5000, max_result_bytes=1000)
    )
    assert (huge.termination, huge.value, huge.value_truncated) == (
        Termination.COMPLETED,
        None,
        True,
    ), show(huge)
    odd = await sandbox.run("return { big: 1n };")
    assert odd.termination is Termination.COMPLETED
    assert odd.value is None
    assert "not JSON-serializable" in odd.logs[-1]
    unstorable = await sandbox.run("return 'nul\\u0000 and lone \\ud800';")
    assert unstorable.value == "nul\ufffd and lone \ufffd"


async def test_errors_carry_name_message_and_stack(sandbox: Harness, show: Show) -> None:
    result = await sandbox.run(
        code="""
        function check(n) { if (n > 2) throw new RangeError('too many: ' + n); }
        export default async function run(ctx) { ctx.log('before'); check(3); }
        """
    )
    assert result.termination is Termination.ERROR, show(result)
    assert result.error_message == "RangeError: too many: 3"
    assert result.error is not None
    assert "at check (function.js:2" in result.error.stack
    assert result.logs == ("before",)
    thrown = await sandbox.run("throw 42;")
    assert thrown.error_message == "Thrown: 42", show(thrown)


async def test_modules_that_cannot_run(sandbox: Harness, show: Show) -> None:
    syntax = await sandbox.run(code="export default async function run(ctx) { return ( }")
    assert syntax.termination is Termination.ERROR
    assert syntax.error is not None
    assert syntax.error.name == "SyntaxError", show(syntax)
    no_default = await sandbox.run(code="export const x = 1;")
    assert no_default.error_message == (
        "TypeError: the module must `export default async function run(ctx)`"
    ), show(no_default)
    top_level = await sandbox.run(code="throw new Error('at load');\nexport default () => 1;")
    assert top_level.error_message == "Error: at load", show(top_level)
    sync = await sandbox.run(code="export default function run(ctx) { return 7; }")
    assert sync.value == 7, show(sync)


async def test_a_promise_nothing_resolves_ends_the_run(sandbox: Harness, show: Show) -> None:
    result = await sandbox.run("await new Promise(() => {});")
    assert result.termination is Termination.ERROR, show(result)
    assert result.error_message == (
        "run() never settled: it awaits a promise that nothing can resolve"
    )


async def test_unawaited_calls_are_abandoned_not_performed(sandbox: Harness, show: Show) -> None:
    result = await sandbox.run("ctx.message.send({ to: '+55', text: 'late' }); return 1;")
    assert result.termination is Termination.COMPLETED, show(result)
    assert sandbox.bridge.messages == []
    assert "abandoned" in result.logs[-1]


async def test_every_run_starts_fresh(sandbox: Harness, show: Show) -> None:
    code = """
    export default async function run(ctx) {
      const seen = typeof globalThis.leak;
      globalThis.leak = 1;
      Object.prototype.polluted = true;
      return [seen, Math.random()];
    }
    """
    first = await sandbox.run(code=code)
    second = await sandbox.run(code=code)
    assert isinstance(first.value, list)
    assert isinstance(second.value, list)
    assert first.value[0] == second.value[0] == "undefined", show(second)
    assert first.value[1] != second.value[1]


async def test_usage_is_reported(sandbox: Harness, show: Show) -> None:
    result = await sandbox.run("let s = 0; for (let i = 0; i < 1e5; i++) s += i; return s;")
    assert result.value == 4999950000, show(result)
    assert result.usage.fuel > 1_000_000
    assert result.usage.memory_bytes > 0
    assert result.usage.duration_ms >= result.usage.js_ms > 0
    usage = result.to_json()["usage"]
    assert isinstance(usage, dict)
    assert usage["fuel"] == result.usage.fuel
