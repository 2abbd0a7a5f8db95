"""A MESSAGE chrono from the api to WhatsApp: api → event store → scheduler → cf.work.message →
executor-message → waha-gateway → WAHA simulator, and back into the run history.

Every service with its real lifespan, in-process, on the session's real NATS and PostgreSQL;
the gateway and the simulator on loopback ports.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_api.app import create_app as create_api
from chronoflow_api.projector.app import create_app as create_projector
from chronoflow_api.settings import ApiSettings, ProjectorSettings
from chronoflow_devstack.embedded import NatsServer
from chronoflow_executor_message.app import create_app as create_executor
from chronoflow_executor_message.settings import ExecutorMessageSettings
from chronoflow_platform import apikeys
from chronoflow_platform.executor.testing import TERMINAL
from chronoflow_scheduler.app import create_app as create_scheduler
from chronoflow_scheduler.settings import SchedulerSettings
from chronoflow_waha_gateway.testing import WahaStack, waha_stack

SECRETS_KEY = Fernet.generate_key().decode()
RECIPIENTS = ["+5511999990001", "+55 21 98888-0002", "120363025000000001@g.us"]
CHATS = ["5511999990001@c.us", "5521988880002@c.us", "120363025000000001@g.us"]


@pytest.fixture
async def system(
    nats_server: NatsServer, database_url: str, clean_stack: JetStreamContext, engine: AsyncEngine
) -> AsyncIterator[tuple[httpx.AsyncClient, WahaStack]]:
    """api, projector, scheduler, executor-message, waha-gateway and the simulator."""
    env = {
        "NATS_URL": nats_server.url,
        "DATABASE_URL": database_url,
        "CHRONOFLOW_SECRETS_KEY": SECRETS_KEY,
        "CHRONOFLOW_PROFILE": "development",
    }
    projector = create_projector(ProjectorSettings.model_validate(env))
    api = create_api(ApiSettings.model_validate(env))
    scheduler = create_scheduler(SchedulerSettings.model_validate(env))
    executor = create_executor(ExecutorMessageSettings.model_validate(env))
    _, key = await apikeys.create_key(engine, "message end to end")
    async with (
        projector.router.lifespan_context(projector),
        api.router.lifespan_context(api),
        scheduler.router.lifespan_context(scheduler),
        executor.router.lifespan_context(executor),
        waha_stack(nats_url=nats_server.url, database_url=database_url) as stack,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=api),
            base_url="http://api",
            headers={"Authorization": f"Bearer {key}"},
        ) as client,
    ):
        yield client, stack


async def runs_when(
    api: httpx.AsyncClient, chrono_id: str, count: int, within: float = 30.0
) -> list[dict[str, Any]]:
    async with asyncio.timeout(within):
        while True:
            items: list[dict[str, Any]] = (
                await api.get(f"/chronos/{chrono_id}/runs", params={"take": 100})
            ).json()["items"]
            if sum(1 for r in items if r["status"] in TERMINAL) >= count:
                return items
            await asyncio.sleep(0.1)


async def test_a_message_chrono_fires_on_schedule_and_on_trigger(
    system: tuple[httpx.AsyncClient, WahaStack],
) -> None:
    api, stack = system
    await stack.pair("default")
    created = await api.post(
        "/channels", json={"name": "WhatsApp", "config": {"session": "default"}}
    )
    assert created.status_code == 201, created.text
    channel_id = created.json()["id"]
    # Paired before the channel existed: the gateway gives a new channel its session's status.
    async with asyncio.timeout(10):
        while True:
            if (await api.get(f"/channels/{channel_id}")).json()["status"] == "WORKING":
                break
            await asyncio.sleep(0.05)

    chrono = await api.post(
        "/chronos",
        json={
            "name": "promo",
            "cron": "in 2 seconds",
            "targetType": "MESSAGE",
            "channelId": channel_id,
            "messageTemplate": "Bom dia! Promo de hoje...",
            "recipients": RECIPIENTS,
        },
    )
    assert chrono.status_code == 201, chrono.text
    chrono_id = chrono.json()["id"]

    [scheduled] = await runs_when(api, chrono_id, 1)
    assert scheduled["status"] == "SUCCESS", scheduled
    assert scheduled["trigger"] == "SCHEDULE"
    assert [r["chatId"] for r in scheduled["result"]["recipients"]] == CHATS
    assert all(r["status"] == "SENT" for r in scheduled["result"]["recipients"])

    triggered = await api.post(f"/chronos/{chrono_id}/trigger")
    assert triggered.status_code in (200, 201, 202), triggered.text
    runs = await runs_when(api, chrono_id, 2)
    assert sorted(r["trigger"] for r in runs) == ["MANUAL", "SCHEDULE"]
    assert all(r["status"] == "SUCCESS" for r in runs)

    delivered = await stack.messages()
    # Two occurrences, each text once per recipient, on the channel's session.
    assert Counter(m["chatId"] for m in delivered) == Counter(dict.fromkeys(CHATS, 2))
    assert {m["session"] for m in delivered} == {"default"}
    assert {m["text"] for m in delivered} == {"Bom dia! Promo de hoje..."}
    chrono_now = (await api.get(f"/chronos/{chrono_id}")).json()
    assert chrono_now["lastRunStatus"] == "SUCCESS"
