"""Switchable faults: 429 with Retry-After, 500 carrying 429, plain 500, slow answers."""

from __future__ import annotations

import time

import httpx

from chronoflow_waha_simulator.testing import eventually


async def working(client: httpx.AsyncClient) -> None:
    await client.post("/api/sessions", json={"name": "default"})

    async def asks() -> bool:
        return bool((await client.get("/api/sessions/default")).json()["status"] == "SCAN_QR_CODE")

    await eventually(asks)
    await client.post("/_sim/sessions/default/pair")


def text_to(chat: str) -> dict[str, str]:
    return {"session": "default", "chatId": chat, "text": "hi"}


async def test_rate_limit_for_one_chat_n_times_then_delivers_once(
    client: httpx.AsyncClient,
) -> None:
    await working(client)
    fault = await client.post(
        "/_sim/faults",
        json={"kind": "rate_limit", "chatId": "2@c.us", "times": 2, "retryAfter": 7},
    )
    assert fault.status_code == 201
    fault_id = fault.json()["id"]

    assert (await client.post("/api/sendText", json=text_to("1@c.us"))).status_code == 201
    for _ in range(2):
        limited = await client.post("/api/sendText", json=text_to("2@c.us"))
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "7"
    assert (await client.post("/api/sendText", json=text_to("2@c.us"))).status_code == 201

    record = (await client.get("/_sim/messages")).json()
    assert [m["chatId"] for m in record] == ["1@c.us", "2@c.us"]
    faults = (await client.get("/_sim/faults")).json()
    assert faults == [
        {
            "id": fault_id,
            "spec": {
                "kind": "rate_limit",
                "chatId": "2@c.us",
                "session": None,
                "path": None,
                "times": 2,
                "retryAfter": 7.0,
                "delaySeconds": 0.0,
                "statusCode": 500,
            },
            "remaining": 0,
            "hits": 2,
        }
    ]


async def test_a_500_whose_body_carries_whatsapps_429(client: httpx.AsyncClient) -> None:
    await working(client)
    await client.post("/_sim/faults", json={"kind": "server_error_429", "times": 1})
    response = await client.post("/api/sendText", json=text_to("1@c.us"))
    assert response.status_code == 500
    body = response.json()
    assert body["statusCode"] == 500
    assert body["exception"]["message"] == "rate-overlimit"
    assert body["exception"]["data"] == 429
    assert body["request"]["body"]["chatId"] == "1@c.us"
    assert "retry-after" not in response.headers
    assert (await client.post("/api/sendText", json=text_to("1@c.us"))).status_code == 201


async def test_a_plain_server_error_and_a_custom_status(client: httpx.AsyncClient) -> None:
    await working(client)
    await client.post("/_sim/faults", json={"kind": "server_error", "statusCode": 503, "times": 1})
    response = await client.post("/api/sendText", json=text_to("1@c.us"))
    assert response.status_code == 503
    assert "429" not in response.text
    assert (await client.get("/_sim/messages")).json() == []


async def test_faults_stay_until_removed_without_times(client: httpx.AsyncClient) -> None:
    await working(client)
    added = await client.post("/_sim/faults", json={"kind": "rate_limit", "session": "default"})
    for _ in range(3):
        limited = await client.post("/api/sendText", json=text_to("1@c.us"))
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1"
    assert (await client.delete(f"/_sim/faults/{added.json()['id']}")).status_code == 204
    assert (await client.delete(f"/_sim/faults/{added.json()['id']}")).status_code == 404
    assert (await client.post("/api/sendText", json=text_to("1@c.us"))).status_code == 201


async def test_a_slow_send_and_a_slow_session_route(client: httpx.AsyncClient) -> None:
    await working(client)
    await client.post("/_sim/faults", json={"kind": "delay", "delaySeconds": 0.3, "times": 1})
    started = time.monotonic()
    assert (await client.post("/api/sendText", json=text_to("1@c.us"))).status_code == 201
    assert time.monotonic() - started >= 0.3

    await client.post(
        "/_sim/faults",
        json={"kind": "delay", "path": "/api/sessions/default", "delaySeconds": 0.3},
    )
    started = time.monotonic()
    assert (await client.get("/api/sessions/default")).status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert (await client.get("/api/sessions")).status_code == 200
    assert time.monotonic() - started < 0.3  # only that exact path


async def test_a_path_fault_can_fail_a_session_route(client: httpx.AsyncClient) -> None:
    await client.post(
        "/_sim/faults", json={"kind": "server_error", "path": "/api/sessions", "times": 1}
    )
    assert (await client.get("/api/sessions")).status_code == 500
    assert (await client.get("/api/sessions")).status_code == 200


async def test_clearing_faults(client: httpx.AsyncClient) -> None:
    await working(client)
    await client.post("/_sim/faults", json={"kind": "rate_limit"})
    assert (await client.delete("/_sim/faults")).status_code == 204
    assert (await client.get("/_sim/faults")).json() == []
    assert (await client.post("/api/sendText", json=text_to("1@c.us"))).status_code == 201


async def test_an_unknown_fault_kind_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/_sim/faults", json={"kind": "explode"})
    assert response.status_code == 400
