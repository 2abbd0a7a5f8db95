"""MESSAGE runs end to end: RunRequested on cf.work.message → executor-message → NATS request →
waha-gateway → WAHA simulator on 127.0.0.1 → run history through the projector.

Real nats-server and PostgreSQL (the session's); the api and the projector in-process; the
gateway and the simulator on loopback ports (the simulator's webhooks reach the gateway over
HTTP); every exchange between the gateway and the simulator is checked against WAHA's OpenAPI
document.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry

from chronoflow_contracts import new_id
from chronoflow_devstack.embedded import NatsServer
from chronoflow_executor_message.app import create_app as create_executor
from chronoflow_executor_message.settings import ExecutorMessageSettings
from chronoflow_executor_message.testing import message_definition, publish_run, run_request
from chronoflow_platform.executor.testing import run_history
from chronoflow_waha_gateway.testing import WahaStack, waha_stack
from chronoflow_waha_simulator.contract import (
    ContractCheckingTransport,
    load_contract,
    openapi_path,
)

OPENAPI = openapi_path(Path(__file__).resolve().parents[1])
ANA, BETO, GRUPO = "+55 11 99999-0001", "+55 (21) 98888-0002", "120363025000000001@g.us"
ANA_ID, BETO_ID = "5511999990001@c.us", "5521988880002@c.us"
TEXT = "Bom dia! Promo de hoje..."


@pytest.fixture
def checked() -> ContractCheckingTransport:
    """Checks the gateway's exchanges with the simulator against WAHA's contract."""
    if not OPENAPI.is_file():
        pytest.skip(f"WAHA's OpenAPI document is absent (expected at {OPENAPI.resolve()})")
    return ContractCheckingTransport(load_contract(OPENAPI.resolve()))


@contextlib.asynccontextmanager
async def running_executor(nats_url: str, **env: str) -> AsyncIterator[FastAPI]:
    """executor-message with its real lifespan."""
    values = {"NATS_URL": nats_url, "CHRONOFLOW_PROFILE": "development", **env}
    app = create_executor(ExecutorMessageSettings.model_validate(values))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def stack(
    nats_server: NatsServer,
    database_url: str,
    api: httpx.AsyncClient,
    checked: ContractCheckingTransport,
) -> AsyncIterator[WahaStack]:
    """Simulator + gateway (pacing off), session ``default`` waiting for its QR scan."""
    async with waha_stack(
        nats_url=nats_server.url, database_url=database_url, transport=checked
    ) as running:
        yield running


@pytest.fixture
async def executor(nats_server: NatsServer, stack: WahaStack) -> AsyncIterator[FastAPI]:
    """executor-message, started after the streams were emptied."""
    async with running_executor(nats_server.url) as app:
        yield app


@pytest.fixture
async def channel(api: httpx.AsyncClient) -> str:
    """The WAHA channel for session ``default``, created through the api."""
    created = await api.post("/channels", json={"name": "vendas", "config": {"session": "default"}})
    assert created.status_code == 201, created.text
    channel_id: str = created.json()["id"]
    return channel_id


def sample(app: FastAPI, name: str, labels: dict[str, str]) -> float:
    registry: CollectorRegistry = app.state.runtime.registry
    return registry.get_sample_value(name, labels) or 0.0


def by_chat(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["chatId"]: r for r in result["recipients"]}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_three_recipients_each_get_the_text_once_and_the_run_lists_them(
    js: JetStreamContext,
    api: httpx.AsyncClient,
    *,
    stack: WahaStack,
    executor: FastAPI,
    channel: str,
    checked: ContractCheckingTransport,
) -> None:
    await stack.pair("default")
    request = run_request(message_definition(channel, [ANA, BETO, GRUPO], TEXT))
    await publish_run(js, request)

    [run] = await run_history(api, request.chrono_id)
    assert run["status"] == "SUCCESS", run
    assert run["targetType"] == "MESSAGE"
    assert run["errorMessage"] is None
    assert run["willRetry"] is False
    delivered = await stack.messages()
    assert sorted((m["chatId"], m["session"], m["text"]) for m in delivered) == sorted(
        [(ANA_ID, "default", TEXT), (BETO_ID, "default", TEXT), (GRUPO, "default", TEXT)]
    )
    result = run["result"]
    assert (result["channelId"], result["session"]) == (channel, "default")
    assert (result["sent"], result["failed"], result["pending"]) == (3, 0, 0)
    # Each recipient as the chrono wrote it, with the message id WAHA gave it.
    ids = {m["chatId"]: m["id"] for m in delivered}
    assert [
        (r["recipient"], r["chatId"], r["status"], r["attempt"]) for r in result["recipients"]
    ] == [
        (ANA, ANA_ID, "SENT", 1),
        (BETO, BETO_ID, "SENT", 1),
        (GRUPO, GRUPO, "SENT", 1),
    ]
    assert {r["chatId"]: r["messageId"] for r in result["recipients"]} == ids
    assert (
        sample(executor, "chronoflow_runs_total", {"target": "message", "status": "SUCCESS"}) == 1
    )
    assert sample(executor, "chronoflow_run_duration_seconds_count", {"target": "message"}) == 1
    assert sample(stack.gateway, "chronoflow_waha_sends_total", {"outcome": "sent"}) == 3
    assert "ChattingController_sendText" in {e.operation_id for e in checked.exchanges}


@pytest.mark.parametrize("kind", ["rate_limit", "server_error_429"])
async def test_a_rate_limited_recipient_is_retried_and_nobody_gets_the_text_twice(
    kind: str,
    js: JetStreamContext,
    api: httpx.AsyncClient,
    *,
    stack: WahaStack,
    executor: FastAPI,
    channel: str,
) -> None:
    await stack.pair("default")
    # WhatsApp throttles Beto's text twice (429, or WAHA's 500 carrying 429), then lets it go.
    await stack.fault(kind=kind, chatId=BETO_ID, times=2, retryAfter=1)
    request = run_request(message_definition(channel, [ANA, BETO, GRUPO], attempts=4))
    await publish_run(js, request)

    first, second, third = await run_history(api, request.chrono_id, attempts=3)
    assert [r["status"] for r in (first, second, third)] == ["FAILED", "FAILED", "SUCCESS"]
    assert [r["willRetry"] for r in (first, second, third)] == [True, True, False]
    assert [r["attempt"] for r in (first, second, third)] == [1, 2, 3]
    assert first["httpStatus"] == (429 if kind == "rate_limit" else 500)
    assert first["errorMessage"].startswith("2 of 3 recipients did not get the text: ")
    assert "rate limited" in first["errorMessage"]

    # Attempt 1 reached Ana, stopped at Beto, left the group for later.
    one = by_chat(first["result"])
    assert one[ANA_ID]["status"] == "SENT"
    assert (one[BETO_ID]["status"], one[BETO_ID]["retryable"]) == ("FAILED", True)
    assert one[GRUPO]["status"] == "PENDING"
    assert first["result"]["nextAttemptAt"]
    # Retry-After (1 s) is the floor of the wait, whatever the policy's 100 ms.
    for before, after in ((first, second), (second, third)):
        assert (at(after["startedAt"]) - at(before["finishedAt"])).total_seconds() >= 1.0
    # The last attempt lists everyone, with the attempt that reached them.
    final = by_chat(third["result"])
    assert {chat: (r["status"], r["attempt"]) for chat, r in final.items()} == {
        ANA_ID: ("SENT", 1),
        BETO_ID: ("SENT", 3),
        GRUPO: ("SENT", 3),
    }
    delivered = Counter(m["chatId"] for m in await stack.messages())
    assert delivered == Counter({ANA_ID: 1, BETO_ID: 1, GRUPO: 1})
    assert sample(executor, "chronoflow_run_retries_total", {"target": "message"}) == 2


async def test_a_session_that_is_not_working_fails_the_run_clearly(
    js: JetStreamContext,
    api: httpx.AsyncClient,
    stack: WahaStack,
    executor: FastAPI,
    channel: str,
) -> None:
    # Session "default" is waiting for its QR scan: nothing may go out.
    request = run_request(message_definition(channel, [ANA, BETO], attempts=3))
    await publish_run(js, request)

    [run] = await run_history(api, request.chrono_id)
    assert run["status"] == "FAILED"
    assert run["willRetry"] is False
    assert run["errorMessage"] == (
        "2 of 2 recipients did not get the text: WhatsApp session 'default' is SCAN_QR_CODE, "
        "not WORKING: link a phone by scanning its QR code (GET /waha/sessions/default/auth/qr)"
    )
    recipients = by_chat(run["result"])
    assert recipients[ANA_ID]["status"] == "FAILED"
    assert recipients[BETO_ID]["status"] == "FAILED"
    assert recipients[BETO_ID]["error"].startswith("not sent: ")
    assert await stack.messages() == []
    await asyncio.sleep(0.5)  # a retry would have come after 100 ms
    assert len(await run_history(api, request.chrono_id)) == 1


async def test_an_attempt_that_lost_track_of_its_deliveries_sends_nothing_twice(
    js: JetStreamContext,
    api: httpx.AsyncClient,
    stack: WahaStack,
    executor: FastAPI,
    channel: str,
) -> None:
    """As when an executor died after sending and the run came back without its progress:
    the gateway's record of sends (by occurrence and chat) answers instead of WAHA."""
    await stack.pair("default")
    definition = message_definition(channel, [ANA, BETO])
    request = run_request(definition)
    await publish_run(js, request)
    [first] = await run_history(api, request.chrono_id)
    assert first["status"] == "SUCCESS"

    again = run_request(
        definition,
        chrono_id=request.chrono_id,
        scheduled_for=request.scheduled_for,
        attempt=2,
    )
    assert again.carried_result is None
    await publish_run(js, again)
    _, second = await run_history(api, request.chrono_id, attempts=2)
    assert second["status"] == "SUCCESS"
    assert by_chat(second["result"]) == {
        chat: {**entry, "attempt": 2} for chat, entry in by_chat(first["result"]).items()
    }
    assert len(await stack.messages()) == 2
    assert sample(stack.gateway, "chronoflow_waha_sends_total", {"outcome": "deduplicated"}) == 2


async def test_an_unknown_channel_fails_the_run_clearly(
    js: JetStreamContext, api: httpx.AsyncClient, stack: WahaStack, executor: FastAPI
) -> None:
    missing = new_id()
    request = run_request(message_definition(missing, [ANA]))
    await publish_run(js, request)
    [run] = await run_history(api, request.chrono_id)
    assert run["status"] == "FAILED"
    assert run["errorMessage"] == f"channel {missing} does not exist (or is not a WAHA channel)"


async def test_without_a_gateway_the_run_is_retried_later(
    nats_server: NatsServer, js: JetStreamContext, api: httpx.AsyncClient
) -> None:
    async with running_executor(nats_server.url) as app:
        request = run_request(message_definition(new_id(), [ANA], attempts=2))
        await publish_run(js, request)
        first, second = await run_history(api, request.chrono_id, attempts=2)
    assert first["errorMessage"] == "the waha-gateway is not running"
    assert (first["willRetry"], second["willRetry"]) == (True, False)
    assert by_chat(second["result"])[ANA_ID]["status"] == "FAILED"
    assert sample(app, "chronoflow_runs_total", {"target": "message", "status": "FAILED"}) == 2


async def test_pacing_holds_the_sessions_rate_across_a_list(
    nats_server: NatsServer,
    database_url: str,
    js: JetStreamContext,
    api: httpx.AsyncClient,
    channel: str,
) -> None:
    async with (
        waha_stack(
            nats_url=nats_server.url, database_url=database_url, WAHA_SEND_RATE_PER_SECOND="5"
        ) as stack,
        running_executor(nats_server.url),
    ):
        await stack.pair("default")
        recipients = [f"+55 11 9{n:04d}-{n:04d}" for n in range(6)]
        request = run_request(message_definition(channel, recipients))
        await publish_run(js, request)
        [run] = await run_history(api, request.chrono_id)
        delivered = sorted(at(m["deliveredAt"]) for m in await stack.messages())
    assert run["status"] == "SUCCESS"
    assert len(delivered) == 6
    # 5 per second: six texts take at least a second from the first to the last.
    assert (delivered[-1] - delivered[0]).total_seconds() >= 1.0 - 0.03
    assert run["durationMs"] >= 970
