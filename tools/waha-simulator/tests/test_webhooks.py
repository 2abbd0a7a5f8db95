"""``session.status`` webhooks: WAHA's envelope (checked against the contract) and its HMAC."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
from pydantic import SecretStr

from chronoflow_waha_simulator.contract import WahaContract
from chronoflow_waha_simulator.server import RunningSimulator, run_simulator
from chronoflow_waha_simulator.testing import WebhookSink, eventually, fast_settings


def expected_hmac(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


async def test_every_webhook_is_signed_with_hmac_sha512_of_the_raw_body(
    client: httpx.AsyncClient, sink: WebhookSink, hook_key: str, contract: WahaContract
) -> None:
    await client.post("/api/sessions", json={"name": "default", "config": {"metadata": {"k": "v"}}})
    await eventually(lambda: len(sink.received) >= 2)
    await client.post("/_sim/sessions/default/pair")
    await eventually(lambda: len(sink.received) == 3)

    for hook in sink.received:
        assert hook.headers["content-type"] == "application/json"
        assert hook.headers["x-webhook-hmac-algorithm"] == "sha512"
        assert hmac.compare_digest(
            hook.headers["x-webhook-hmac"], expected_hmac(hook_key, hook.body)
        )
        assert hook.headers["x-webhook-hmac"] != expected_hmac("another-key", hook.body)
        assert hook.headers["x-webhook-request-id"]
        assert int(hook.headers["x-webhook-timestamp"]) > 1_700_000_000_000
        assert hook.headers["user-agent"] == "WAHA/2026.7.1"
        contract.check_webhook("session.status", hook.body, hook.headers)

    last = json.loads(sink.received[-1].body)
    assert last["event"] == "session.status"
    assert last["id"].startswith("evt_")
    assert len(last["id"]) == 30
    assert last["session"] == "default"
    assert last["metadata"] == {"k": "v"}
    assert last["engine"] == "WEBJS"
    assert last["me"]["id"].endswith("@c.us")
    assert last["payload"]["status"] == "WORKING"
    assert last["payload"]["data"] is None
    assert [s["status"] for s in last["payload"]["statuses"]] == [
        "STARTING",
        "SCAN_QR_CODE",
        "WORKING",
    ]
    first = json.loads(sink.received[0].body)
    assert "me" not in first  # no account before pairing


async def test_a_session_webhook_with_its_own_key_events_and_headers(
    client: httpx.AsyncClient, sink: WebhookSink, contract: WahaContract
) -> None:
    async with (
        run_simulator(fast_settings()) as bare,
        httpx.AsyncClient(base_url=bare.base_url) as http,
    ):
        hook = {
            "url": sink.url,
            "events": ["message", "session.status"],
            "hmac": {"key": "per-session"},
            "customHeaders": [{"name": "X-Request-ID", "value": "123"}],
            "retries": {"attempts": 1, "delaySeconds": 0},
        }
        created = await http.post(
            "/api/sessions", json={"name": "own", "start": False, "config": {"webhooks": [hook]}}
        )
        assert created.json()["config"]["webhooks"] == [hook]
        await http.post("/api/sessions/own/start")
        await eventually(lambda: len(sink.received) >= 1)
        received = sink.received[0]
        assert received.headers["x-request-id"] == "123"
        assert received.headers["x-webhook-hmac"] == expected_hmac("per-session", received.body)
        contract.check_webhook("session.status", received.body, received.headers)


async def test_unsigned_when_no_key_and_only_subscribed_events(sink: WebhookSink) -> None:
    settings = fast_settings(hook_urls=[sink.url], hook_events=["message"])
    async with (
        run_simulator(settings) as sim,
        httpx.AsyncClient(base_url=sim.base_url) as http,
    ):
        await http.post("/api/sessions", json={"name": "quiet"})
        await eventually(lambda: sim.state.sessions.get("quiet") is not None)
        assert (await http.get("/_sim/webhooks", params={"flush": "true"})).json() == []

    settings = fast_settings(hook_urls=[sink.url])
    async with (
        run_simulator(settings) as sim,
        httpx.AsyncClient(base_url=sim.base_url) as http,
    ):
        await http.post("/api/sessions", json={"name": "plain", "start": False})
        await http.post("/api/sessions/plain/start")
        await eventually(lambda: len(sink.received) >= 1)
        assert "x-webhook-hmac" not in sink.received[0].headers


async def test_a_failing_receiver_is_retried_and_the_log_says_so(
    sim: RunningSimulator, client: httpx.AsyncClient, sink: WebhookSink
) -> None:
    sink.fail_next = 2
    await client.post("/api/sessions", json={"name": "r", "start": False})
    await client.post("/api/sessions/r/start")
    log = (await client.get("/_sim/webhooks", params={"flush": "true"})).json()
    assert log[0]["status"] == "STARTING"
    assert log[0]["attempts"] == 3
    assert log[0]["delivered"] is True
    assert log[0]["responseStatus"] == 200
    assert log[0]["signed"] is True
    assert json.loads(sink.received[0].body)["payload"]["status"] == "STARTING"
    assert (await client.delete("/_sim/webhooks")).status_code == 204
    assert (await client.get("/_sim/webhooks")).json() == []


async def test_an_unreachable_receiver_is_given_up_on(api_key: str) -> None:
    settings = fast_settings(
        hook_urls=["http://127.0.0.1:9/hook"],
        hook_hmac_key=SecretStr("k"),
        hook_retries_attempts=2,
    )
    async with (
        run_simulator(settings) as sim,
        httpx.AsyncClient(base_url=sim.base_url) as http,
    ):
        await http.post("/api/sessions", json={"name": "x", "start": False})
        await http.post("/api/sessions/x/start")
        log = (await http.get("/_sim/webhooks", params={"flush": "true"})).json()
        assert log[0]["delivered"] is False
        assert log[0]["attempts"] == 2
        assert log[0]["error"].startswith("ConnectError")
