"""The service's HostBridge: egress refusals and gateway answers become messages for the user.

No traffic leaves the process: IP-literal destinations are refused before any connection, and
the gateway is a fake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from chronoflow_egress import EgressPolicy, build_client
from chronoflow_executor_function.bridge import RunBridge
from chronoflow_executor_function.gateway import WahaGateway, _refusal
from chronoflow_executor_function.sandbox import HostOpError, HttpRequest, JsonValue


class FakeGateway(WahaGateway):
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def send_text(self, session: str, chat_id: str, text: str) -> JsonValue:
        self.sent.append((session, chat_id, text))
        return {"id": "m1"}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """The production policy: no allowlist at all."""
    async with build_client(EgressPolicy()) as guarded:
        yield guarded


def bridge(client: httpx.AsyncClient, gateway: FakeGateway, *channels: str | None) -> RunBridge:
    sessions = {"ch-1": "vendas"}

    async def lookup(channel_id: str) -> str | None:
        return sessions.get(channel_id)

    return RunBridge(client=client, gateway=gateway, sessions=lookup, channel_ids=channels)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8080/x", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://10.0.0.1/", "private"),
        ("http://[::1]:9/", "loopback"),
    ],
)
async def test_refused_destinations_become_host_op_errors(
    client: httpx.AsyncClient, url: str, reason: str
) -> None:
    with pytest.raises(HostOpError, match=rf"^egress blocked \({reason}\): .* is not permitted$"):
        await bridge(client, FakeGateway()).http_request(HttpRequest(method="GET", url=url))


async def test_messages_go_to_the_chrono_channel_first_with_normalised_numbers(
    client: httpx.AsyncClient,
) -> None:
    gateway = FakeGateway()
    run = bridge(client, gateway, None, "ch-1")
    assert await run.send_message("+55 (11) 99999-9999", "oi") == {"id": "m1"}
    await run.send_message("120363000000000000@g.us", "grupo")
    assert gateway.sent == [
        ("vendas", "5511999999999@c.us", "oi"),
        ("vendas", "120363000000000000@g.us", "grupo"),
    ]


async def test_message_refusals_are_clear(client: httpx.AsyncClient) -> None:
    with pytest.raises(HostOpError, match="is not a phone number or WhatsApp chat id"):
        await bridge(client, FakeGateway(), "ch-1").send_message("not a number", "x")
    with pytest.raises(HostOpError, match="neither the chrono nor the function has a channel"):
        await bridge(client, FakeGateway()).send_message("+5511999999999", "x")
    with pytest.raises(HostOpError, match="channel gone does not exist"):
        await bridge(client, FakeGateway(), "gone").send_message("+5511999999999", "x")


def test_gateway_refusals_are_read_from_its_answer() -> None:
    assert _refusal({"id": "true_x"}) is None
    assert _refusal(["anything"]) is None
    assert _refusal({"error": "session not WORKING"}) == "session not WORKING"
    assert _refusal({"error": {"message": "rate limited"}, "status": 429}) == (
        "rate limited (WAHA status 429)"
    )
    assert _refusal({"ok": False}) == "the waha-gateway refused the message"
