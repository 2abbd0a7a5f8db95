"""executor-function end to end: RunRequested on cf.work.function → the sandbox → history.

Real nats-server and PostgreSQL (the session's), the api and the projector in-process, the
executor in-process with its real lifespan (real sandbox worker processes), a stand-in
waha-gateway answering on its NATS subject, and a user API on 127.0.0.1. Only loopback is ever
contacted: refusals of other address classes are proven while the allowlist is off (nothing
is sent: IP literals are refused before connecting) and with the egress decision function.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_contracts.chrono import RetryPolicy
from chronoflow_contracts.runs import run_id
from chronoflow_devstack.embedded import NatsServer, free_port
from chronoflow_egress import BlockReason, check_address, egress_policy
from chronoflow_executor_function.sandbox import SandboxPool
from chronoflow_executor_function.settings import ExecutorFunctionSettings
from chronoflow_executor_function.testing import (
    GatewayStandIn,
    UserApi,
    function_definition,
    publish_run,
    run_request,
    running_executor,
    until,
)
from chronoflow_platform.executor.testing import TERMINAL
from chronoflow_platform.schema import function_state
from chronoflow_scheduler.app import create_app as create_scheduler
from chronoflow_scheduler.settings import SchedulerSettings

SEED_FILE = (
    Path(__file__).resolve().parents[1]
    / "services/executor-function/tests/sandbox/seed_example.json"
)
#: The original product's example function, verbatim (its URL is replaced per test).
SEED = json.loads(SEED_FILE.read_text(encoding="utf-8"))
ENVIRON = {"CF_TEST_GREETING": "olá", "CF_TEST_SECRET": "not for functions"}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("function-cache"))


@pytest.fixture
async def gateway(nc: NatsClient) -> AsyncIterator[GatewayStandIn]:
    async with GatewayStandIn(nc) as stand_in:
        yield stand_in


@pytest.fixture
async def users() -> AsyncIterator[UserApi]:
    async with UserApi() as server:
        yield server


Launch = Callable[..., contextlib.AbstractAsyncContextManager[FastAPI]]


@pytest.fixture
def launch(nats_server: NatsServer, database_url: str, cache_dir: str) -> Launch:
    """Starts an executor on the session's servers; keyword arguments are its environment."""
    return functools.partial(
        running_executor, nats_url=nats_server.url, database_url=database_url, cache_dir=cache_dir
    )


@pytest.fixture
async def executor(launch: Launch, api: httpx.AsyncClient) -> AsyncIterator[FastAPI]:
    """The executor (loopback allowlisted, CF_TEST_GREETING on the env allowlist)."""
    async with launch(environ=ENVIRON, FUNCTION_ENV_ALLOWLIST="CF_TEST_GREETING") as app:
        yield app


async def create_channel(api: httpx.AsyncClient, session: str = "default") -> str:
    response = await api.post("/channels", json={"name": "wa", "config": {"session": session}})
    assert response.status_code == 201, response.text
    channel_id: str = response.json()["id"]
    return channel_id


async def create_function(
    api: httpx.AsyncClient, code: str, *, channel_id: str | None = None, **limits: int
) -> str:
    body: dict[str, Any] = {"name": "f", "code": code, "limits": limits, "channelId": channel_id}
    response = await api.post("/functions", json=body)
    assert response.status_code == 201, response.text
    function_id: str = response.json()["id"]
    return function_id


async def finished(api: httpx.AsyncClient, run: str, wait_s: float = 30.0) -> dict[str, Any]:
    """The run once history shows it terminal."""

    async def check() -> dict[str, Any] | None:
        response = await api.get(f"/runs/{run}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body if body["status"] in TERMINAL else None

    async with asyncio.timeout(wait_s):
        result: dict[str, Any] = await until(check)
        return result


async def stored_state(api: httpx.AsyncClient, function_id: str) -> dict[str, Any]:
    response = await api.get(f"/functions/{function_id}")
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()["state"]
    return state


def body(code: str) -> str:
    return f"export default async function run(ctx) {{\n{code}\n}}\n"


def sample(app: FastAPI, name: str, labels: dict[str, str] | None = None) -> float:
    registry: CollectorRegistry = app.state.runtime.registry
    return registry.get_sample_value(name, labels or {}) or 0.0


def pool_of(app: FastAPI) -> SandboxPool:
    pool: SandboxPool = app.state.runtime.state["pool"]
    return pool


# --- the original product's example -------------------------------------------------------


async def test_seed_example_runs_end_to_end_and_its_counter_grows(
    js: JetStreamContext,
    api: httpx.AsyncClient,
    executor: FastAPI,
    gateway: GatewayStandIn,
    users: UserApi,
) -> None:
    channel = await create_channel(api)
    gateway.sessions[channel] = "default"
    code = SEED["functionCode"].replace("https://api.internal", users.base)
    function_id = await create_function(api, code, channel_id=channel, **SEED["functionLimits"])
    definition = function_definition(function_id, name=SEED["name"], extras=SEED["extras"])

    first = run_request(definition)
    await publish_run(js, first)
    run = await finished(api, first.run_id)
    assert run["status"] == "SUCCESS", run
    assert run["targetType"] == "FUNCTION"
    result = run["result"]
    assert result["termination"] == "completed"
    assert result["logs"] == ["enviados 3"]
    assert (result["httpCalls"], result["messagesSent"]) == (1, 3)
    assert result["changedKeys"] == ["lastCount"]
    assert result["function"]["id"] == function_id
    assert result["function"]["version"] == 1
    assert result["stateRevision"] == 1
    assert result["usage"]["fuel"] > 0
    assert users.requests == ["/users?overdue=true"]
    assert {r.channel_id for r in gateway.requests} == {channel}
    assert all(r.idempotency_key for r in gateway.requests)
    # One message per user, on the function's channel's session, numbers normalised as the
    # api normalises MESSAGE recipients.
    assert [(s.session, s.chat_id, s.text) for s in gateway.sent] == [
        ("default", "5511999999999@c.us", "Olá Ana, sua fatura vence hoje"),
        ("default", "5511888888888@c.us", "Olá Bruno, sua fatura vence hoje"),
        ("default", "5511777777777@c.us", "Olá Carla, sua fatura vence hoje"),
    ]
    assert await stored_state(api, function_id) == {"lastCount": 3}

    second = run_request(
        definition, chrono_id=first.chrono_id, scheduled_for=first.scheduled_for + timedelta(days=1)
    )
    await publish_run(js, second)
    run = await finished(api, second.run_id)
    assert run["status"] == "SUCCESS", run
    assert await stored_state(api, function_id) == {"lastCount": 6}
    assert len(gateway.sent) == 6

    labels = {"target": "function", "status": "SUCCESS"}
    assert sample(executor, "chronoflow_runs_total", labels) == 2
    assert sample(executor, "chronoflow_function_terminations_total", {"reason": "completed"}) == 2
    assert sample(executor, "chronoflow_function_cpu_seconds_count") == 2
    assert sample(executor, "chronoflow_run_duration_seconds_count", {"target": "function"}) == 2


@pytest.fixture
async def scheduler(
    nats_server: NatsServer, database_url: str, api: httpx.AsyncClient
) -> AsyncIterator[FastAPI]:
    """The scheduler service with its real lifespan, started on the api's clean streams."""
    settings = SchedulerSettings.model_validate(
        {"NATS_URL": nats_server.url, "DATABASE_URL": database_url}
    )
    app = create_scheduler(settings)
    async with app.router.lifespan_context(app):
        yield app


async def test_seed_example_on_schedule_through_the_api_and_the_scheduler(
    api: httpx.AsyncClient,
    executor: FastAPI,
    gateway: GatewayStandIn,
    users: UserApi,
    scheduler: FastAPI,
) -> None:
    """A chrono created through the api with the seed's inline code fires every 2 s."""
    channel = await create_channel(api)
    gateway.sessions[channel] = "default"
    chrono = {
        **{k: v for k, v in SEED.items() if not k.startswith("_")},
        "functionCode": SEED["functionCode"].replace("https://api.internal", users.base),
        "cron": "*/2 * * * * *",
        "channelId": channel,
    }
    created = await api.post("/chronos", json=chrono)
    assert created.status_code == 201, created.text
    chrono_id = created.json()["id"]
    function_id = created.json()["functionId"]

    async def two_successes() -> list[dict[str, Any]] | None:
        runs = (await api.get(f"/chronos/{chrono_id}/runs")).json()["items"]
        done = [r for r in runs if r["status"] == "SUCCESS"]
        return done if len(done) >= 2 else None

    async with asyncio.timeout(30):
        await until(two_successes, interval=0.2)
    paused = await api.post(f"/chronos/{chrono_id}/pause")
    assert paused.status_code == 200, paused.text

    async def all_finished() -> list[dict[str, Any]] | None:
        # A run that fired before the pause may still be running: count once it ended.
        await asyncio.sleep(0.5)
        runs: list[dict[str, Any]] = (await api.get(f"/chronos/{chrono_id}/runs")).json()["items"]
        return runs if all(r["status"] in TERMINAL for r in runs) else None

    async with asyncio.timeout(20):
        runs = await until(all_finished)

    successes = [r for r in runs if r["status"] == "SUCCESS"]
    assert len(successes) >= 2
    assert all(r["trigger"] == "SCHEDULE" for r in successes)
    assert all(r["result"]["logs"] == ["enviados 3"] for r in successes)
    state = await stored_state(api, function_id)
    assert state == {"lastCount": 3 * len(successes)}
    assert len(gateway.sent) == 3 * len(successes)


@pytest.fixture
async def waha(
    nats_server: NatsServer, database_url: str, api: httpx.AsyncClient
) -> AsyncIterator[Any]:
    """The real waha-gateway in front of the WAHA simulator, session ``default`` paired."""
    gateway_testing = pytest.importorskip("chronoflow_waha_gateway.testing")
    async with gateway_testing.waha_stack(
        nats_url=nats_server.url, database_url=database_url
    ) as stack:
        await stack.pair("default")
        yield stack


async def test_seed_example_through_the_waha_gateway_and_the_simulator(
    js: JetStreamContext, api: httpx.AsyncClient, executor: FastAPI, users: UserApi, waha: Any
) -> None:
    """The real waha-gateway and WAHA simulator instead of the stand-in."""
    channel = await create_channel(api, session="default")
    code = SEED["functionCode"].replace("https://api.internal", users.base)
    function_id = await create_function(api, code, channel_id=channel)
    request = run_request(function_definition(function_id, extras=SEED["extras"]))
    await publish_run(js, request)
    run = await finished(api, request.run_id)
    delivered = await waha.messages(session="default")

    assert run["status"] == "SUCCESS", run
    assert run["result"]["messagesSent"] == 3
    assert [(m["chatId"], m["text"]) for m in delivered] == [
        ("5511999999999@c.us", "Olá Ana, sua fatura vence hoje"),
        ("5511888888888@c.us", "Olá Bruno, sua fatura vence hoje"),
        ("5511777777777@c.us", "Olá Carla, sua fatura vence hoje"),
    ]
    assert await stored_state(api, function_id) == {"lastCount": 3}


# --- state ----------------------------------------------------------------------------------

CONCURRENT = body(
    """
    const mine = 'runs:' + ctx.extras.who;
    const before = ctx.state.get(mine) || 0;
    const total = ctx.state.get('total') || 0;
    await ctx.sleep(400);  // both runs hold the same starting state
    ctx.state.set(mine, before + 1);
    ctx.state.set('total', total + 1);
    return before + 1;
    """
)


async def test_two_overlapping_runs_keep_their_own_keys_and_report_the_shared_one(
    js: JetStreamContext, api: httpx.AsyncClient, executor: FastAPI, engine: AsyncEngine
) -> None:
    function_id = await create_function(api, CONCURRENT)
    requests = [
        run_request(function_definition(function_id, extras={"who": who})) for who in ("a", "b")
    ]
    await asyncio.gather(*(publish_run(js, r) for r in requests))
    runs = [await finished(api, r.run_id) for r in requests]
    assert [r["status"] for r in runs] == ["SUCCESS", "SUCCESS"], runs
    # They did overlap: each started before the other finished.
    assert runs[0]["startedAt"] < runs[1]["finishedAt"]
    assert runs[1]["startedAt"] < runs[0]["finishedAt"]

    state = await stored_state(api, function_id)
    # Each run's own counter: both increments are there, neither run lost the other's write.
    assert state["runs:a"] == 1
    assert state["runs:b"] == 1
    # The key both runs wrote holds the later write; the later run's result says it replaced
    # a concurrent run's value (read-modify-write of one key across overlapping runs races).
    assert state["total"] == 1
    by_revision = sorted(runs, key=lambda r: r["result"]["stateRevision"])
    assert [r["result"]["stateRevision"] for r in by_revision] == [1, 2]
    assert "stateOverwritten" not in by_revision[0]["result"]
    assert by_revision[1]["result"]["stateOverwritten"] == ["total"]
    async with engine.connect() as conn:
        revision = await conn.scalar(
            select(function_state.c.revision).where(function_state.c.function_id == function_id)
        )
    assert revision == 2


async def test_many_overlapping_runs_each_keep_their_write(
    js: JetStreamContext, api: httpx.AsyncClient, executor: FastAPI
) -> None:
    """Eight runs at once, four at a time in the sandboxes: the CAS retries until all land."""
    function_id = await create_function(api, CONCURRENT)
    requests = [
        run_request(function_definition(function_id, extras={"who": str(i)})) for i in range(8)
    ]
    await asyncio.gather(*(publish_run(js, r) for r in requests))
    runs = [await finished(api, r.run_id) for r in requests]
    assert {r["status"] for r in runs} == {"SUCCESS"}
    state = await stored_state(api, function_id)
    assert {k: v for k, v in state.items() if k.startswith("runs:")} == {
        f"runs:{i}": 1 for i in range(8)
    }
    assert sorted(r["result"]["stateRevision"] for r in runs) == list(range(1, 9))


async def test_state_is_saved_only_when_the_run_completes(
    js: JetStreamContext, api: httpx.AsyncClient, executor: FastAPI, engine: AsyncEngine
) -> None:
    function_id = await create_function(
        api, body("ctx.state.set('x', 1); throw new Error('boom');")
    )
    request = run_request(function_definition(function_id))
    await publish_run(js, request)
    run = await finished(api, request.run_id)
    assert run["status"] == "FAILED"
    assert run["errorMessage"] == "Error: boom"
    assert run["result"]["error"]["message"] == "boom"
    assert not run["willRetry"]  # the function's own error: another attempt would repeat it
    async with engine.connect() as conn:
        rows = await conn.scalar(select(func.count()).select_from(function_state))
    assert rows == 0


# --- limits, env, egress --------------------------------------------------------------------


async def test_max_http_plus_one_fails_the_run(
    js: JetStreamContext, api: httpx.AsyncClient, executor: FastAPI, users: UserApi
) -> None:
    code = body(
        f"""
        ctx.state.set('before', true);
        for (let i = 0; i < 3; i++) {{
          try {{ await ctx.http.get('{users.url("/users")}'); }} catch (e) {{ ctx.log(e.message); }}
        }}
        return 'unreachable';
        """
    )
    function_id = await create_function(api, code, maxHttp=2)
    request = run_request(function_definition(function_id))
    await publish_run(js, request)
    run = await finished(api, request.run_id)
    assert run["status"] == "FAILED"
    assert run["errorMessage"] == "maxHttp exceeded (2)"
    assert run["result"]["termination"] == "quota"
    assert run["result"]["httpCalls"] == 2
    assert run["result"]["value"] is None
    assert len(users.requests) == 2
    assert await stored_state(api, function_id) == {}
    assert sample(executor, "chronoflow_function_terminations_total", {"reason": "quota"}) == 1


async def test_env_reads_only_allowlisted_variables(
    js: JetStreamContext, api: httpx.AsyncClient, executor: FastAPI
) -> None:
    reads = await create_function(
        api,
        body(
            """
            let refused;
            try { ctx.env('CF_TEST_SECRET'); } catch (e) { refused = e.message; }
            return [ctx.env('CF_TEST_GREETING'), refused];
            """
        ),
    )
    uncaught = await create_function(api, body("return ctx.env('DATABASE_URL');"))
    ok, bad = (run_request(function_definition(f)) for f in (reads, uncaught))
    await publish_run(js, ok)
    await publish_run(js, bad)
    run = await finished(api, ok.run_id)
    assert run["status"] == "SUCCESS", run
    assert run["result"]["value"] == [
        "olá",
        'ctx.env: "CF_TEST_SECRET" is not an allowlisted variable',
    ]
    run = await finished(api, bad.run_id)
    assert run["status"] == "FAILED"
    assert run["errorMessage"] == 'Error: ctx.env: "DATABASE_URL" is not an allowlisted variable'


def test_the_egress_decision_refuses_metadata_and_loopback() -> None:
    development = egress_policy(
        ExecutorFunctionSettings.model_validate({"CHRONOFLOW_PROFILE": "development"})
    )
    production = egress_policy(ExecutorFunctionSettings.model_validate({}))
    metadata = ip_address("169.254.169.254")
    loopback = ip_address("127.0.0.1")
    # The development allowlist (loopback) never covers the metadata endpoint.
    assert check_address(metadata, 80, development).reason is BlockReason.METADATA
    assert check_address(loopback, 8080, development).reason is None
    assert check_address(metadata, 80, production).reason is BlockReason.METADATA
    assert check_address(loopback, 8080, production).reason is BlockReason.LOOPBACK
    with pytest.raises(ValueError, match="production refuses"):
        egress_policy(ExecutorFunctionSettings.model_validate({"CHRONOFLOW_EGRESS_ALLOW": "::1"}))


SSRF_TARGETS = {
    "127.0.0.1": ("http://127.0.0.1:{port}/users", "loopback"),
    "localhost": ("http://localhost:{port}/users", "loopback"),
    "::1": ("http://[::1]:{port}/users", "loopback"),
    "mapped": ("http://[::ffff:127.0.0.1]:{port}/users", "loopback"),
    "zero": ("http://0.0.0.0:{port}/users", "unspecified"),
    "metadata": ("http://169.254.169.254/latest/meta-data/", "metadata"),
    "ecs": ("http://169.254.170.2/v2/credentials", "metadata"),
}


async def test_ctx_http_refuses_private_addresses_with_the_allowlist_off(
    launch: Launch,
    js: JetStreamContext,
    api: httpx.AsyncClient,
    users: UserApi,
) -> None:
    port = users.base.rsplit(":", 1)[1]
    targets = {name: url.format(port=port) for name, (url, _) in SSRF_TARGETS.items()}
    code = body(
        f"""
        const out = {{}};
        for (const [name, url] of Object.entries({json.dumps(targets)})) {{
          try {{ out[name] = (await ctx.http.get(url)).status; }}
          catch (e) {{ out[name] = e.message; }}
        }}
        return out;
        """
    )
    probing = await create_function(api, code, maxHttp=20)
    uncaught = await create_function(
        api, body("await ctx.http.get('http://169.254.169.254/latest/meta-data/iam/');")
    )
    # Development profile, but nothing allowlisted.
    async with launch(CHRONOFLOW_EGRESS_ALLOW="") as app:
        probe, direct = (run_request(function_definition(f)) for f in (probing, uncaught))
        await publish_run(js, probe)
        await publish_run(js, direct)
        run = await finished(api, probe.run_id)
        failed = await finished(api, direct.run_id)
        blocked = sample(app, "chronoflow_egress_blocked_total", {"reason": "loopback"})

    assert run["status"] == "SUCCESS", run
    for name, (_, reason) in SSRF_TARGETS.items():
        message = run["result"]["value"][name]
        assert isinstance(message, str), (name, message)
        assert message.startswith(f"egress blocked ({reason}): "), (name, message)
        assert message.endswith("is not permitted"), (name, message)
    assert users.requests == []  # nothing reached the loopback server
    assert blocked >= 4
    assert failed["status"] == "FAILED"
    assert failed["errorMessage"] == (
        "Error: egress blocked (metadata): 169.254.169.254:80 is not permitted"
    )


async def test_redirects_to_refused_addresses_are_blocked(
    launch: Launch,
    js: JetStreamContext,
    api: httpx.AsyncClient,
    users: UserApi,
) -> None:
    """Only the user API's own port is allowlisted; every redirect hop is checked again."""
    port = users.base.rsplit(":", 1)[1]
    hops = {
        "otherPort": f"http://127.0.0.1:{free_port()}/admin",
        "metadata": "http://169.254.169.254/latest/meta-data/",
        "sameOrigin": users.url("/echo"),
    }
    code = body(
        f"""
        const out = {{}};
        for (const [name, to] of Object.entries({json.dumps(hops)})) {{
          const url = '{users.url("/redirect")}?to=' + encodeURIComponent(to);
          try {{ const r = await ctx.http.get(url); out[name] = [r.status, r.data.method]; }}
          catch (e) {{ out[name] = e.message; }}
        }}
        return out;
        """
    )
    function_id = await create_function(api, code, maxHttp=10)
    async with launch(CHRONOFLOW_EGRESS_ALLOW=f"127.0.0.1:{port}"):
        request = run_request(function_definition(function_id))
        await publish_run(js, request)
        run = await finished(api, request.run_id)

    assert run["status"] == "SUCCESS", run
    value = run["result"]["value"]
    assert value["otherPort"].startswith("egress blocked (loopback): 127.0.0.1:")
    assert value["metadata"] == "egress blocked (metadata): 169.254.169.254:80 is not permitted"
    assert value["sameOrigin"] == [200, "GET"]


# --- failures, retries, hostile code -------------------------------------------------------


async def test_a_missing_function_fails_the_run_without_retry(
    js: JetStreamContext, api: httpx.AsyncClient, executor: FastAPI
) -> None:
    request = run_request(
        function_definition("0190d5f0-0000-7000-8000-000000000000", retry=RetryPolicy(attempts=3))
    )
    await publish_run(js, request)
    run = await finished(api, request.run_id)
    assert run["status"] == "FAILED"
    assert run["errorMessage"] == "function 0190d5f0-0000-7000-8000-000000000000 does not exist"
    assert not run["willRetry"]


async def test_a_crashed_sandbox_is_retried_per_the_chrono_policy(
    js: JetStreamContext, api: httpx.AsyncClient, executor: FastAPI, gateway: GatewayStandIn
) -> None:
    """The worker dies mid-run; the next attempt runs the function again, and the text the
    first attempt sent is not sent twice (the gateway's idempotency key is per occurrence)."""
    channel = await create_channel(api)
    gateway.sessions[channel] = "default"
    code = body(
        """
        const sent = await ctx.message.send({ to: '+5511999999999', text: 'lembrete' });
        if (ctx.chrono.attempt === 1) { await ctx.sleep(30000); }
        return [ctx.chrono.attempt, sent.deduplicated];
        """
    )
    function_id = await create_function(api, code, channel_id=channel, timeoutMs=60000)
    policy = RetryPolicy(attempts=2, backoff="fixed", delay_ms=0, jitter=False)
    request = run_request(function_definition(function_id, retry=policy))
    pool = pool_of(executor)
    await publish_run(js, request)

    async def running() -> bool:
        response = await api.get(f"/runs/{request.run_id}")
        return response.status_code == 200 and response.json()["status"] == "RUNNING"

    async with asyncio.timeout(20):
        await until(running)
        await until(lambda: gateway.sent)  # the run is inside its worker, sleeping
    # Kill every worker of the pool this test started: only the busy one was serving a run.
    for pid in pool.worker_pids:
        os.kill(pid, signal.SIGKILL)

    first = await finished(api, request.run_id)
    assert first["status"] == "FAILED"
    assert first["errorMessage"].startswith("the sandbox worker died")
    assert first["result"]["termination"] == "crashed"
    assert first["willRetry"]
    assert "nextAttemptAt" in first["result"]
    second = await finished(api, run_id(request.occurrence_id, 2))
    assert second["status"] == "SUCCESS", second
    assert second["attempt"] == 2
    assert second["result"]["value"] == [2, True]
    assert len(gateway.sent) == 1
    assert len(gateway.requests) == 2
    assert sample(executor, "chronoflow_run_retries_total", {"target": "function"}) == 1
    # Dead workers are replaced (the idle ones killed here, when next picked up).
    assert pool.stats.workers_lost >= 1


HOSTILE: dict[str, tuple[str, str, str]] = {
    # name: (body, expected status, expected termination)
    "busy loop": ("while (true) {}", "TIMEOUT", "timeout"),
    "microtask loop": (
        "const f = () => Promise.resolve().then(f); f(); await new Promise(() => {});",
        "TIMEOUT",
        "timeout",
    ),
    "memory bomb": (
        "const a = []; while (true) a.push(new Array(1e5).fill(a.length));",
        "FAILED",
        "memory",
    ),
    "memory bomb that retries": (
        "const a = []; while (true) { try { a.push(new Array(1e5).fill(1)); } catch (e) {} }",
        "TIMEOUT",
        "timeout",
    ),
    "deep recursion": (
        "const f = (n) => n === 0 ? 0 : 1 + f(n - 1); return f(200000);",
        "FAILED",
        "error",
    ),
    "huge buffer": ("return new ArrayBuffer(2 ** 31).byteLength;", "FAILED", "error"),
    "require": ("return require('fs').readFileSync('/etc/passwd');", "FAILED", "error"),
    "process": ("process.exit(1);", "FAILED", "error"),
    "import os": ("const os = await import('os'); return os.getenv('HOME');", "FAILED", "error"),
    "fetch": ("return await fetch('http://127.0.0.1/');", "FAILED", "error"),
    "WebAssembly": ("return WebAssembly.Module.name;", "FAILED", "error"),
    "sdk pollution": (
        "Object.prototype.toJSON = () => 'pwned'; ctx.http.get = () => 1; return 1;",
        "FAILED",
        "error",
    ),
    "maxHttp+1": (
        "for (let i = 0; i < 3; i++) {"
        " try { await ctx.http.get('http://127.0.0.1:9/'); } catch (e) {} }",
        "FAILED",
        "quota",
    ),
    "env": ("return ctx.env('DATABASE_URL');", "FAILED", "error"),
    "ssrf": ("return await ctx.http.get('http://169.254.169.254/');", "FAILED", "error"),
}
BENIGN = body(
    """
    const n = (ctx.state.get('n') || 0) + 1;
    ctx.state.set('n', n);
    ctx.log('benign', ctx.extras.i);
    return { n, i: ctx.extras.i };
    """
)


@pytest.mark.slow
async def test_fifty_hostile_runs_while_a_benign_function_keeps_working(
    js: JetStreamContext, api: httpx.AsyncClient, executor: FastAPI
) -> None:
    hostile = {
        name: await create_function(api, body(code), timeoutMs=600, memoryMb=16, maxHttp=2)
        for name, (code, _, _) in HOSTILE.items()
    }
    benign = await create_function(api, BENIGN, timeoutMs=5000)
    names = list(HOSTILE)
    flood = [
        (names[i % len(names)], run_request(function_definition(hostile[names[i % len(names)]])))
        for i in range(50)
    ]
    health = httpx.AsyncClient(transport=httpx.ASGITransport(app=executor), base_url="http://ef")
    async with health:
        await asyncio.gather(*(publish_run(js, request) for _, request in flood))
        # The benign function, one run after the other, while the flood is being run.
        for i in range(1, 6):
            request = run_request(function_definition(benign, extras={"i": i}))
            await publish_run(js, request)
            run = await finished(api, request.run_id, wait_s=90)
            assert run["status"] == "SUCCESS", run
            assert run["result"]["value"] == {"n": i, "i": i}
            assert run["result"]["logs"] == [f"benign {i}"]
            assert (await health.get("/ready")).status_code == 200
        outcomes = [
            (name, await finished(api, request.run_id, wait_s=90)) for name, request in flood
        ]
        ready = await health.get("/ready")

    for name, run in outcomes:
        _, status, termination = HOSTILE[name]
        assert (run["status"], run["result"]["termination"]) == (status, termination), (name, run)
        assert run["errorMessage"], (name, run)
    assert ready.status_code == 200, ready.text
    assert await stored_state(api, benign) == {"n": 5}
    assert len(pool_of(executor).worker_pids) == 4


async def test_the_chrono_timeout_can_only_shorten_the_function_timeout(
    js: JetStreamContext, api: httpx.AsyncClient, executor: FastAPI
) -> None:
    function_id = await create_function(api, body("await ctx.sleep(5000);"), timeoutMs=20000)
    request = run_request(function_definition(function_id, timeout_ms=300))
    await publish_run(js, request)
    run = await finished(api, request.run_id)
    assert run["status"] == "TIMEOUT"
    assert run["errorMessage"] == "timeoutMs exceeded (300 ms)"
    assert run["durationMs"] < 3000
