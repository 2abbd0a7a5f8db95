"""``ctx.message.send``'s client of the waha-gateway, against a stand-in speaking its contract."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NatsClient

from chronoflow_contracts.waha import SendErrorCode, WahaSendReply
from chronoflow_executor_function.gateway import WahaGateway
from chronoflow_executor_function.sandbox import HostOpError
from chronoflow_executor_function.testing import GatewayStandIn, SentText

CHAT = "5511999999999@c.us"


@pytest.fixture
async def stand_in(nc: NatsClient) -> AsyncIterator[GatewayStandIn]:
    async with GatewayStandIn(nc, sessions={"ch-1": "default"}) as gateway:
        yield gateway


def later(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


async def test_a_text_is_sent_once_per_key(nc: NatsClient, stand_in: GatewayStandIn) -> None:
    gateway = WahaGateway(nc, timeout_s=5)
    first = await gateway.send_text("ch-1", CHAT, "oi", idempotency_key="k1", deadline=later(5))
    again = await gateway.send_text("ch-1", CHAT, "oi", idempotency_key="k1", deadline=later(5))
    assert isinstance(first, dict)
    assert first["deduplicated"] is False
    assert first["session"] == "default"
    assert again == {**first, "deduplicated": True}
    assert stand_in.sent == [SentText("default", CHAT, "oi")]
    assert stand_in.requests[0].channel_id == "ch-1"


async def test_paced_refusals_are_asked_again_after_retry_after(
    nc: NatsClient, stand_in: GatewayStandIn
) -> None:
    stand_in.pace[CHAT] = 2
    gateway = WahaGateway(nc, timeout_s=5)
    await gateway.send_text("ch-1", CHAT, "oi", idempotency_key=None, deadline=later(5))
    assert len(stand_in.requests) == 3
    assert len(stand_in.sent) == 1


async def test_a_wait_past_the_run_s_end_is_not_attempted(
    nc: NatsClient, stand_in: GatewayStandIn
) -> None:
    stand_in.pace[CHAT] = 1
    stand_in.pace_retry_after = 30
    gateway = WahaGateway(nc, timeout_s=5)
    with pytest.raises(HostOpError, match=r"\(paced, retry after 30 s\)$"):
        await gateway.send_text("ch-1", CHAT, "oi", idempotency_key=None, deadline=later(5))
    assert stand_in.sent == []


async def test_final_refusals_reach_javascript_in_the_gateway_s_words(
    nc: NatsClient, stand_in: GatewayStandIn
) -> None:
    stand_in.refuse[CHAT] = WahaSendReply(
        ok=False,
        code=SendErrorCode.SESSION_NOT_WORKING,
        error="WhatsApp session 'default' is SCAN_QR_CODE, not WORKING: link a phone",
    )
    gateway = WahaGateway(nc, timeout_s=5)
    with pytest.raises(
        HostOpError,
        match=r"^ctx.message.send: WhatsApp session 'default' is SCAN_QR_CODE, not WORKING: "
        r"link a phone \(session_not_working\)$",
    ):
        await gateway.send_text("ch-1", CHAT, "oi", idempotency_key=None, deadline=later(5))
    with pytest.raises(HostOpError, match=r"channel nope does not exist .*\(unknown_channel\)"):
        await gateway.send_text("nope", CHAT, "oi", idempotency_key=None, deadline=later(5))


async def test_no_gateway_is_a_clear_error(nc: NatsClient) -> None:
    gateway = WahaGateway(nc, timeout_s=5)
    with pytest.raises(HostOpError, match="the waha-gateway is not running"):
        await gateway.send_text("ch-1", CHAT, "oi", idempotency_key=None, deadline=later(5))
