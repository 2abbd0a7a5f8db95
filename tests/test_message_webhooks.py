"""WAHA's session.status webhooks through the waha-gateway: HMAC-SHA512 verified, turned into
ChannelStatusChanged on the event store, and followed by the projection's ``Channel.status``.

Real NATS and PostgreSQL; the api and the projector in-process; the gateway and the WAHA
simulator on loopback, the simulator signing its webhooks as WAHA does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_contracts import names
from chronoflow_devstack.embedded import NatsServer
from chronoflow_platform import apikeys
from chronoflow_waha_gateway.testing import HMAC_KEY, WEBHOOK_PATH, WahaStack, waha_stack
from chronoflow_waha_gateway.webhooks import sign


@pytest.fixture
async def stack(
    nats_server: NatsServer, database_url: str, api: httpx.AsyncClient
) -> AsyncIterator[WahaStack]:
    """Simulator + gateway sharing the HMAC key; no session until a test starts one."""
    async with waha_stack(
        nats_url=nats_server.url, database_url=database_url, start_sessions=()
    ) as running:
        yield running


async def create_channel(
    api: httpx.AsyncClient, session: str = "default", *, starts: str | None = "STOPPED"
) -> str:
    """Create the session's channel; ``starts`` is its status in the answer (None: either,
    for a session that already works, whose status the gateway may apply at once)."""
    created = await api.post("/channels", json={"name": session, "config": {"session": session}})
    assert created.status_code == 201, created.text
    if starts is not None:
        assert created.json()["status"] == starts
    channel_id: str = created.json()["id"]
    return channel_id


async def channel_status(api: httpx.AsyncClient, channel_id: str) -> str:
    got = await api.get(f"/channels/{channel_id}")
    assert got.status_code == 200, got.text
    status: str = got.json()["status"]
    return status


async def until_status(
    api: httpx.AsyncClient, channel_id: str, wanted: str, within: float = 10.0
) -> None:
    async with asyncio.timeout(within):
        while True:
            if await channel_status(api, channel_id) == wanted:
                return
            await asyncio.sleep(0.05)


def envelope(status: str, session: str = "default", event_id: str = "evt_01TEST") -> bytes:
    """A session.status webhook body as WAHA serializes it."""
    body: dict[str, Any] = {
        "id": event_id,
        "timestamp": int(time.time() * 1000),
        "event": "session.status",
        "session": session,
        "payload": {"name": session, "status": status, "statuses": [], "data": None},
        "engine": "WEBJS",
        "environment": {"version": "2026.7.1", "engine": "WEBJS", "tier": "CORE"},
    }
    return json.dumps(body, separators=(",", ":")).encode()


async def channel_events(js: JetStreamContext, channel_id: str) -> int:
    info = await js.stream_info(
        names.EVENTS_STREAM, subjects_filter=names.aggregate_subject("channel", channel_id)
    )
    return sum((info.state.subjects or {}).values())


async def test_a_webhook_with_a_wrong_or_missing_hmac_is_refused(
    js: JetStreamContext, api: httpx.AsyncClient, stack: WahaStack
) -> None:
    channel_id = await create_channel(api)
    body = envelope("WORKING")
    url = stack.gateway_url + WEBHOOK_PATH
    async with httpx.AsyncClient() as http:
        for headers in (
            {},
            {"X-Webhook-Hmac": sign(body, "not-the-key"), "X-Webhook-Hmac-Algorithm": "sha512"},
            {"X-Webhook-Hmac": sign(body + b" ", HMAC_KEY), "X-Webhook-Hmac-Algorithm": "sha512"},
            {"X-Webhook-Hmac": sign(body, HMAC_KEY), "X-Webhook-Hmac-Algorithm": "sha256"},
        ):
            refused = await http.post(
                url, content=body, headers={"content-type": "application/json", **headers}
            )
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["code"] == "unauthorized"
    await asyncio.sleep(0.3)
    assert await channel_status(api, channel_id) == "STOPPED"
    assert await channel_events(js, channel_id) == 1  # only channel.created


async def test_a_signed_webhook_moves_the_channel_to_working_once(
    js: JetStreamContext, api: httpx.AsyncClient, stack: WahaStack
) -> None:
    channel_id = await create_channel(api)
    other = await create_channel(api, "support")
    body = envelope("WORKING", event_id="evt_01SIGNED")
    headers = {
        "content-type": "application/json",
        "X-Webhook-Hmac": sign(body, HMAC_KEY),
        "X-Webhook-Hmac-Algorithm": "sha512",
    }
    async with httpx.AsyncClient() as http:
        accepted = await http.post(stack.gateway_url + WEBHOOK_PATH, content=body, headers=headers)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json() == {
            "accepted": True,
            "session": "default",
            "status": "WORKING",
            "channelsChanged": 1,
        }
        await until_status(api, channel_id, "WORKING")
        # WAHA retries a delivery it thinks failed: the same event is not stored twice.
        again = await http.post(stack.gateway_url + WEBHOOK_PATH, content=body, headers=headers)
        assert again.status_code == 200
    assert await channel_events(js, channel_id) == 2
    # A channel on another session is untouched.
    assert await channel_status(api, other) == "STOPPED"


async def test_the_simulators_signed_webhooks_drive_the_channel(
    api: httpx.AsyncClient, stack: WahaStack, engine: AsyncEngine
) -> None:
    channel_id = await create_channel(api)
    _, key = await apikeys.create_key(engine, "sessions")
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}
    ) as gateway:
        started = await gateway.post("/waha/sessions", json={"name": "default"})
        assert started.status_code == 201, started.text
        await until_status(api, channel_id, "SCAN_QR_CODE")
        await stack.pair("default")
        await until_status(api, channel_id, "WORKING")
        stopped = await gateway.post("/waha/sessions/default/stop")
        assert stopped.status_code == 200
        await until_status(api, channel_id, "STOPPED")
    deliveries = (await stack.control.get("/webhooks")).json()
    assert deliveries
    assert all(d["signed"] and d["delivered"] for d in deliveries)


async def test_a_new_channel_takes_its_sessions_status_at_once(
    api: httpx.AsyncClient, stack: WahaStack, engine: AsyncEngine
) -> None:
    # The session works before its channel exists (as with `make run`'s seed): its webhooks
    # had no channel to move.
    _, key = await apikeys.create_key(engine, "sessions")
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}
    ) as gateway:
        assert (await gateway.post("/waha/sessions", json={"name": "default"})).status_code == 201
    await stack.pair("default")
    await stack.webhooks_flushed()
    channel_id = await create_channel(api, starts=None)
    await until_status(api, channel_id, "WORKING", within=5)


async def test_without_webhooks_the_reconcile_keeps_the_channel_in_step(
    nats_server: NatsServer, database_url: str, api: httpx.AsyncClient
) -> None:
    async with waha_stack(
        nats_url=nats_server.url,
        database_url=database_url,
        simulator={"hook_urls": []},
        WAHA_STATUS_POLL_SECONDS="0.3",
    ) as stack:
        channel_id = await create_channel(api)
        await until_status(api, channel_id, "SCAN_QR_CODE")
        await stack.pair("default")
        await until_status(api, channel_id, "WORKING")
        failed = await stack.control.post("/sessions/default/fail")
        assert failed.status_code == 200
        await until_status(api, channel_id, "FAILED")
        assert (await stack.control.get("/webhooks")).json() == []
