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
from chronoflow_executor_function.gateway import WahaGateway
from chronoflow_executor_function.sandbox import HostOpError, HttpRequest, JsonValue


class FakeGateway(WahaGateway):
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, str | None]] = []

    async def send_text(
        self,
        channel_id: str,
        chat_id: str,
        text: str,
        *,
        idempotency_key: str | None,
        deadline: float,
    ) -> JsonValue:
        self.sent.append((channel_id, chat_id, text, idempotency_key))
        return {"messageId": "m1"}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """The production policy: no allowlist at all."""
    async with build_client(EgressPolicy()) as guarded:
        yield guarded


def bridge(
    client: httpx.AsyncClient,
    gateway: FakeGateway,
    *channels: str | None,
    occurrence: str | None = "occ-1",
) -> RunBridge:
    return RunBridge(
        client=client,
        gateway=gateway,
        channel_ids=channels,
        occurrence_id=occurrence,
        deadline=float("inf"),
    )


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


async def test_messages_go_to_the_first_channel_set_with_normalised_numbers(
    client: httpx.AsyncClient,
) -> None:
    gateway = FakeGateway()
    run = bridge(client, gateway, None, "ch-function")
    assert await run.send_message("+55 (11) 99999-9999", "oi") == {"messageId": "m1"}
    await run.send_message("120363000000000000@g.us", "grupo")
    await run.send_message("5511999999999@c.us", "oi")
    assert [sent[:3] for sent in gateway.sent] == [
        ("ch-function", "5511999999999@c.us", "oi"),
        ("ch-function", "120363000000000000@g.us", "grupo"),
        ("ch-function", "5511999999999@c.us", "oi"),
    ]
    keys = [sent[3] for sent in gateway.sent]
    assert all(key is not None and key.startswith("fn:occ-1:") for key in keys)
    # The same text to the same chat twice in one run is two texts, not one.
    assert len(set(keys)) == 3
    # A run of the same occurrence executed again asks with the same keys.
    again = FakeGateway()
    rerun = bridge(client, again, "ch-chrono", "ch-function")
    await rerun.send_message("+5511999999999", "oi")
    assert again.sent[0][0] == "ch-chrono"
    assert again.sent[0][3] == keys[0]


async def test_tests_send_without_idempotency_keys(client: httpx.AsyncClient) -> None:
    gateway = FakeGateway()
    await bridge(client, gateway, "ch", occurrence=None).send_message("+5511999999999", "x")
    assert gateway.sent[0][3] is None


async def test_message_refusals_are_clear(client: httpx.AsyncClient) -> None:
    with pytest.raises(HostOpError, match="is not a phone number or WhatsApp chat id"):
        await bridge(client, FakeGateway(), "ch-1").send_message("not a number", "x")
    with pytest.raises(HostOpError, match="neither the chrono nor the function has a channel"):
        await bridge(client, FakeGateway()).send_message("+5511999999999", "x")
