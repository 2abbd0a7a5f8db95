"""``POST /functions/{id}/test``: the api asks executor-function over NATS to run a function now.

Real nats-server and PostgreSQL, the api and projector in-process, the executor in-process with
its real sandbox pool, a stand-in waha-gateway, a user API on 127.0.0.1.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_api import service as api_service
from chronoflow_contracts import names
from chronoflow_devstack.embedded import NatsServer
from chronoflow_executor_function.testing import GatewayStandIn, UserApi, running_executor
from chronoflow_platform.schema import chrono_runs, function_state


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("function-cache"))


@pytest.fixture
async def executor(
    nats_server: NatsServer, database_url: str, cache_dir: str, api: httpx.AsyncClient
) -> AsyncIterator[FastAPI]:
    start = functools.partial(
        running_executor, nats_url=nats_server.url, database_url=database_url, cache_dir=cache_dir
    )
    async with start() as app:
        yield app


@pytest.fixture
async def gateway(nc: NatsClient) -> AsyncIterator[GatewayStandIn]:
    async with GatewayStandIn(nc) as stand_in:
        yield stand_in


@pytest.fixture
async def users() -> AsyncIterator[UserApi]:
    async with UserApi() as server:
        yield server


async def create_function(api: httpx.AsyncClient, code: str, **fields: Any) -> str:
    response = await api.post("/functions", json={"name": "tested", "code": code, **fields})
    assert response.status_code == 201, response.text
    function_id: str = response.json()["id"]
    return function_id


async def test_a_test_run_returns_logs_value_and_state_and_saves_nothing(
    api: httpx.AsyncClient,
    executor: FastAPI,
    gateway: GatewayStandIn,
    users: UserApi,
    engine: AsyncEngine,
) -> None:
    channel = await api.post("/channels", json={"name": "wa", "config": {"session": "vendas"}})
    assert channel.status_code == 201, channel.text
    code = f"""
    export default async function run(ctx) {{
      const r = await ctx.http.get('{users.url("/users")}');
      await ctx.message.send({{ to: r.data[0].phone, text: 'oi ' + r.data[0].name }});
      ctx.state.set('n', (ctx.state.get('n') || 0) + 1);
      ctx.log('segment', ctx.extras.segment, 'chrono', ctx.chrono.name);
      return {{ n: ctx.state.get('n'), users: r.data.length }};
    }}
    """
    gateway.sessions[channel.json()["id"]] = "vendas"
    function_id = await create_function(api, code, channelId=channel.json()["id"])

    response = await api.post(
        f"/functions/{function_id}/test",
        json={"extras": {"segment": "overdue"}, "state": {"n": 41}},
    )
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["functionId"] == function_id
    assert out["functionVersion"] == 1
    assert out["status"] == "SUCCESS"
    assert out["errorMessage"] is None
    assert out["state"] == {"n": 42}
    result = out["result"]
    assert result["value"] == {"n": 42, "users": 3}
    assert result["logs"] == ["segment overdue chrono tested (test)"]
    assert result["termination"] == "completed"
    assert (result["httpCalls"], result["messagesSent"]) == (1, 1)
    assert result["function"]["version"] == 1
    assert [(s.session, s.chat_id) for s in gateway.sent] == [("vendas", "5511999999999@c.us")]
    assert gateway.requests[0].idempotency_key is None  # each test is a new send

    # Nothing saved, nothing recorded.
    assert (await api.get(f"/functions/{function_id}")).json()["state"] == {}
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(function_state)) == 0
        assert await conn.scalar(select(func.count()).select_from(chrono_runs)) == 0

    # Without a state in the body, the run starts from the stored one (empty here).
    response = await api.post(f"/functions/{function_id}/test", json={})
    assert response.status_code == 200, response.text
    assert response.json()["result"]["value"] == {"n": 1, "users": 3}


async def test_a_failing_function_answers_200_with_its_failure(
    api: httpx.AsyncClient, executor: FastAPI
) -> None:
    function_id = await create_function(
        api,
        "export default async function run(ctx) { ctx.log('about to fail'); "
        "for (let i = 0; i < 3; i++) { try { await ctx.http.get('http://127.0.0.1:9/'); } "
        "catch (e) {} } }",
        limits={"maxHttp": 2},
    )
    response = await api.post(f"/functions/{function_id}/test", json={})
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["status"] == "FAILED"
    assert out["errorMessage"] == "maxHttp exceeded (2)"
    assert out["result"]["logs"] == ["about to fail"]

    slow = await create_function(
        api, "export default async function run(ctx) { while (true) {} }", limits={"timeoutMs": 200}
    )
    response = await api.post(f"/functions/{slow}/test", json={})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "TIMEOUT"
    assert response.json()["result"]["termination"] == "timeout"


async def test_unknown_function_is_404_and_bad_bodies_422(
    api: httpx.AsyncClient, executor: FastAPI
) -> None:
    response = await api.post("/functions/0190d5f0-0000-7000-8000-000000000000/test", json={})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    function_id = await create_function(api, "export default function run() { return 1 }")
    response = await api.post(f"/functions/{function_id}/test", json={"extras": [1, 2]})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "extras"
    assert (await api.post(f"/functions/{function_id}/test")).status_code == 422


async def test_without_an_executor_the_answer_is_504(api: httpx.AsyncClient) -> None:
    function_id = await create_function(api, "export default function run() { return 1 }")
    response = await api.post(f"/functions/{function_id}/test", json={})
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["code"] == "executor_unavailable"
    assert "no executor-function is running" in error["message"]


async def test_an_executor_that_does_not_answer_in_time_is_504(
    api: httpx.AsyncClient, nc: NatsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_service, "TEST_REPLY_MARGIN_S", 0.3)
    heard: list[Msg] = []

    async def silent(msg: Msg) -> None:
        heard.append(msg)

    sub = await nc.subscribe(names.FUNCTION_TEST_SUBJECT, cb=silent)
    await nc.flush()
    try:
        function_id = await create_function(
            api, "export default function run() { return 1 }", limits={"timeoutMs": 100}
        )
        response = await api.post(f"/functions/{function_id}/test", json={"extras": {"a": 1}})
    finally:
        await sub.unsubscribe()
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["code"] == "executor_timeout"
    assert "did not answer within 0.4 s" in error["message"]
    assert len(heard) == 1
    assert b'"functionId"' in heard[0].data


async def test_test_runs_are_counted_by_termination(
    api: httpx.AsyncClient, executor: FastAPI
) -> None:
    function_id = await create_function(
        api, "export default function run() { throw new Error('x') }"
    )
    for _ in range(2):
        response = await api.post(f"/functions/{function_id}/test", json={})
        assert response.json()["errorMessage"] == "Error: x"
    value = executor.state.runtime.registry.get_sample_value(
        "chronoflow_function_terminations_total", {"reason": "error"}
    )
    assert value == 2
