"""The send responder on ``cf.rpc.waha.send``: WORKING sessions only, paced, once per key, and
WhatsApp's throttling turned into clear, retryable answers."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_contracts import names, new_id, utc_now
from chronoflow_contracts.waha import WahaSendReply
from chronoflow_devstack.embedded import NatsServer
from chronoflow_platform.schema import channels
from chronoflow_waha_gateway.testing import WahaStack, waha_stack

CHAT = "5511999990001@c.us"
OTHER = "5511999990002@c.us"


async def ask(nc: NatsClient, **body: Any) -> dict[str, Any]:
    """One request as executor-message (or ``ctx.message``) sends it; the raw JSON answer."""
    reply = await nc.request(names.WAHA_SEND_SUBJECT, json.dumps(body).encode(), timeout=10)
    answer: dict[str, Any] = json.loads(reply.data)
    WahaSendReply.model_validate(answer)  # always the contract's shape
    return answer


def sample(stack: WahaStack, name: str, labels: dict[str, str]) -> float:
    registry: CollectorRegistry = stack.gateway.state.runtime.registry
    return registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def working(stack: WahaStack) -> WahaStack:
    """The stack with session ``default`` paired."""
    await stack.pair("default")
    return stack


async def test_a_text_goes_out_through_a_working_session(
    working: WahaStack, nc: NatsClient
) -> None:
    # The body executor-function's ctx.message sends: WAHA's sendText fields.
    answer = await ask(nc, session="default", chatId=CHAT, text="olá")
    assert answer["ok"] is True
    assert answer["session"] == "default"
    assert answer["chatId"] == CHAT
    assert answer["deduplicated"] is False
    assert "error" not in answer
    [delivered] = await working.messages()
    assert (delivered["id"], delivered["session"], delivered["chatId"], delivered["text"]) == (
        answer["messageId"],
        "default",
        CHAT,
        "olá",
    )
    assert sample(working, "chronoflow_waha_sends_total", {"outcome": "sent"}) == 1
    assert (
        sample(
            working, "chronoflow_waha_session_status", {"session": "default", "status": "WORKING"}
        )
        == 1
    )


async def test_a_session_that_is_not_working_is_refused_at_once_and_clearly(
    stack: WahaStack, nc: NatsClient
) -> None:
    started = time.monotonic()
    answer = await ask(nc, session="default", chatId=CHAT, text="x")
    assert time.monotonic() - started < 2
    assert answer["ok"] is False
    assert answer["code"] == "session_not_working"
    assert answer["retryable"] is False
    assert answer["sessionStatus"] == "SCAN_QR_CODE"
    assert answer["error"] == (
        "WhatsApp session 'default' is SCAN_QR_CODE, not WORKING: link a phone by scanning "
        "its QR code (GET /waha/sessions/default/auth/qr)"
    )
    ghost = await ask(nc, session="ghost", chatId=CHAT, text="x")
    assert ghost["code"] == "session_not_working"
    assert ghost["error"].startswith("WhatsApp session 'ghost' is not running, not WORKING")
    assert await stack.messages() == []
    assert sample(stack, "chronoflow_waha_sends_total", {"outcome": "session_not_working"}) == 2

    # Paired a moment later: the refusal was not cached, the next send goes out.
    await stack.pair("default")
    assert (await ask(nc, session="default", chatId=CHAT, text="x"))["ok"] is True


async def test_a_session_stopped_behind_the_gateways_back_is_learnt_from_waha(
    working: WahaStack, nc: NatsClient
) -> None:
    assert (await ask(nc, session="default", chatId=CHAT, text="1"))["ok"]
    # Stopped directly in WAHA: the gateway still believes WORKING; WAHA's refusal teaches it.
    assert (await working.control.post("/sessions/default/fail")).status_code == 200
    answer = await ask(nc, session="default", chatId=CHAT, text="2")
    assert answer["code"] == "session_not_working"
    assert answer["sessionStatus"] == "FAILED"
    assert "restart it (POST /waha/sessions/default/restart)" in answer["error"]
    assert len(await working.messages()) == 1


async def test_an_idempotency_key_sends_once(working: WahaStack, nc: NatsClient) -> None:
    key = f"message:{new_id()}:{CHAT}"
    first, second = await asyncio.gather(
        ask(nc, session="default", chatId=CHAT, text="x", idempotencyKey=key),
        ask(nc, session="default", chatId=CHAT, text="x", idempotencyKey=key),
    )
    third = await ask(nc, session="default", chatId=CHAT, text="x", idempotencyKey=key)
    assert all(a["ok"] for a in (first, second, third))
    assert first["messageId"] == second["messageId"] == third["messageId"]
    # Only one of the three reached WAHA; the others say so.
    assert [first["deduplicated"], second["deduplicated"], third["deduplicated"]].count(False) == 1
    assert third["deduplicated"] is True
    assert len(await working.messages()) == 1
    # Another key (another occurrence) is another text.
    other = await ask(nc, session="default", chatId=CHAT, text="x", idempotencyKey=key + "2")
    assert other["messageId"] != first["messageId"]
    assert sample(working, "chronoflow_waha_sends_total", {"outcome": "deduplicated"}) >= 1


async def test_a_429_rests_the_session_and_says_for_how_long(
    nats_server: NatsServer, database_url: str, nc: NatsClient
) -> None:
    async with waha_stack(
        nats_url=nats_server.url, database_url=database_url, WAHA_SEND_MAX_WAIT_SECONDS="0.2"
    ) as stack:
        await stack.pair()
        await stack.fault(kind="rate_limit", chatId=CHAT, times=1, retryAfter=2)
        limited = await ask(nc, session="default", chatId=CHAT, text="x")
        assert limited["ok"] is False
        assert limited["code"] == "rate_limited"
        assert limited["retryable"] is True
        assert limited["retryAfter"] == 2
        assert limited["status"] == 429
        # WhatsApp's limit is the account's: another chat must wait too, and is told so.
        paced = await ask(nc, session="default", chatId=OTHER, text="y")
        assert paced["code"] == "paced"
        assert paced["retryable"] is True
        assert 1.0 < paced["retryAfter"] <= 2
        await asyncio.sleep(paced["retryAfter"])
        assert (await ask(nc, session="default", chatId=OTHER, text="y"))["ok"] is True


async def test_a_500_carrying_429_is_a_rate_limit_and_a_plain_500_is_retryable(
    nats_server: NatsServer, database_url: str, nc: NatsClient
) -> None:
    async with waha_stack(
        nats_url=nats_server.url, database_url=database_url, WAHA_RATE_LIMIT_PAUSE_SECONDS="0"
    ) as stack:
        await stack.pair()
        await stack.fault(kind="server_error_429", chatId=CHAT, times=1)
        engine_limit = await ask(nc, session="default", chatId=CHAT, text="x")
        assert engine_limit["code"] == "rate_limited"
        assert engine_limit["status"] == 500
        # No Retry-After from WAHA: the configured pause is what the caller must wait.
        assert engine_limit["retryAfter"] == 0
        await stack.fault(kind="server_error", chatId=CHAT, times=1)
        broken = await ask(nc, session="default", chatId=CHAT, text="x")
        assert (broken["code"], broken["retryable"], broken["status"]) == ("unavailable", True, 500)
        assert (await ask(nc, session="default", chatId=CHAT, text="x"))["ok"] is True
        assert len(await stack.messages()) == 1


async def test_pacing_spaces_the_sends_of_one_session(
    nats_server: NatsServer, database_url: str, nc: NatsClient
) -> None:
    async with waha_stack(
        nats_url=nats_server.url, database_url=database_url, WAHA_SEND_RATE_PER_SECOND="10"
    ) as stack:
        await stack.pair()
        answers = await asyncio.gather(
            *(
                ask(nc, session="default", chatId=f"55119999900{i:02d}@c.us", text="x")
                for i in range(8)
            )
        )
        assert all(a["ok"] for a in answers)
        delivered = sorted(datetime.fromisoformat(m["deliveredAt"]) for m in await stack.messages())
        assert len(delivered) == 8
        # 10 per second: k sends apart are at least k x 100 ms apart, give or take the
        # loopback transit between the gateway and the simulator.
        for (i, a), (j, b) in itertools.combinations(enumerate(delivered), 2):
            assert (b - a).total_seconds() >= (j - i) * 0.1 - 0.04, (i, j, delivered)
        assert (delivered[-1] - delivered[0]).total_seconds() >= 0.67


async def test_bad_requests_are_refused_with_the_reason(working: WahaStack, nc: NatsClient) -> None:
    reply = await nc.request(names.WAHA_SEND_SUBJECT, b"not json", timeout=5)
    garbage = json.loads(reply.data)
    assert (garbage["ok"], garbage["code"]) == (False, "invalid_request")
    both = await ask(nc, session="default", channelId="c", chatId=CHAT, text="x")
    assert "exactly one of session and channelId" in both["error"]
    not_a_chat = await ask(nc, session="default", chatId="+55 11 9999", text="x")
    assert not_a_chat["code"] == "invalid_request"
    assert "not a WhatsApp chat id" in not_a_chat["error"]
    unknown = await ask(nc, channelId=new_id(), chatId=CHAT, text="x")
    assert unknown["code"] == "unknown_channel"
    assert await working.messages() == []


@pytest.fixture
async def channel(engine: AsyncEngine) -> AsyncIterator[str]:
    """A WAHA channel on session ``default`` in the read model (as the projector writes it)."""
    channel_id = new_id()
    now = utc_now()
    async with engine.begin() as conn:
        await conn.execute(
            channels.insert().values(
                id=channel_id,
                provider="WAHA",
                name="test",
                config={"session": "default"},
                status="STOPPED",
                created_at=now,
                updated_at=now,
                version=1,
            )
        )
    yield channel_id
    async with engine.begin() as conn:
        await conn.execute(channels.delete().where(channels.c.id == channel_id))


async def test_a_channel_id_names_the_session(
    working: WahaStack, nc: NatsClient, channel: str
) -> None:
    answer = await ask(nc, channelId=channel, chatId=CHAT, text="via channel")
    assert answer["ok"] is True
    assert answer["session"] == "default"
    assert [m["session"] for m in await working.messages()] == ["default"]
