"""``POST /api/sendText``: WAHA's message shape, its refusals, and the delivered record."""

from __future__ import annotations

import httpx
import pytest

from chronoflow_waha_simulator.server import RunningSimulator, run_simulator
from chronoflow_waha_simulator.testing import eventually, fast_settings


async def working(client: httpx.AsyncClient, name: str = "default") -> None:
    await client.post("/api/sessions", json={"name": name})

    async def asks() -> bool:
        return bool((await client.get(f"/api/sessions/{name}")).json()["status"] == "SCAN_QR_CODE")

    await eventually(asks)
    await client.post(f"/_sim/sessions/{name}/pair", json={"phoneNumber": "15550001111"})


async def test_send_text_answers_a_wamessage_and_records_the_delivery(
    client: httpx.AsyncClient,
) -> None:
    await working(client)
    body = {"session": "default", "chatId": "5511999999999@c.us", "text": "hello"}
    response = await client.post("/api/sendText", json=body)
    assert response.status_code == 201
    message = response.json()
    assert message["id"].startswith("true_5511999999999@c.us_")
    assert message["fromMe"] is True
    assert message["from"] == "15550001111@c.us"
    assert message["to"] == "5511999999999@c.us"
    assert message["body"] == "hello"
    assert message["ack"] == 1

    record = (await client.get("/_sim/messages")).json()
    assert len(record) == 1
    assert record[0]["id"] == message["id"]
    assert record[0]["session"] == "default"
    assert record[0]["chatId"] == "5511999999999@c.us"
    assert record[0]["text"] == "hello"


async def test_a_pregenerated_id_is_kept(client: httpx.AsyncClient) -> None:
    await working(client)
    body = {"session": "default", "chatId": "1@g.us", "text": "x", "id": "BBBBBBBB"}
    response = await client.post("/api/sendText", json=body)
    assert response.json()["id"] == "true_1@g.us_BBBBBBBB"


async def test_the_record_filters_and_clears(client: httpx.AsyncClient) -> None:
    await working(client, "a")
    await working(client, "b")
    for session, chat in [("a", "1@c.us"), ("a", "2@c.us"), ("b", "1@c.us")]:
        sent = await client.post(
            "/api/sendText", json={"session": session, "chatId": chat, "text": "t"}
        )
        assert sent.status_code == 201
    by_session = (await client.get("/_sim/messages", params={"session": "a"})).json()
    assert [m["chatId"] for m in by_session] == ["1@c.us", "2@c.us"]
    by_chat = (await client.get("/_sim/messages", params={"chatId": "1@c.us"})).json()
    assert [m["session"] for m in by_chat] == ["a", "b"]
    cleared = await client.delete("/_sim/messages")
    assert cleared.json() == {"deleted": 3}
    assert (await client.get("/_sim/messages")).json() == []


async def test_a_session_that_is_not_running_is_not_found(client: httpx.AsyncClient) -> None:
    body = {"session": "default", "chatId": "1@c.us", "text": "x"}
    unknown = await client.post("/api/sendText", json=body)
    assert unknown.status_code == 404
    await client.post("/api/sessions", json={"name": "default", "start": False})
    stopped = await client.post("/api/sendText", json=body)
    assert stopped.status_code == 404
    assert "Please start it first" in stopped.json()["message"]
    assert (await client.get("/_sim/messages")).json() == []


async def test_a_running_session_that_is_not_working_gets_the_422(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/api/sessions", json={"name": "default"})
    body = {"session": "default", "chatId": "1@c.us", "text": "x"}
    response = await client.post("/api/sendText", json=body)
    assert response.status_code == 422
    refusal = response.json()
    assert refusal["error"].startswith("Session status is not as expected")
    assert refusal["status"] in {"STARTING", "SCAN_QR_CODE"}
    assert refusal["expected"] == ["WORKING"]
    assert (await client.get("/_sim/messages")).json() == []


async def test_send_waits_for_working_as_waha_does(api_key: str) -> None:
    settings = fast_settings(api_key=api_key, status_wait_seconds=3, auto_pair_seconds=0.2)
    async with (
        run_simulator(settings) as sim,
        httpx.AsyncClient(base_url=sim.base_url, headers={"X-Api-Key": api_key}) as http,
    ):
        await http.post("/api/sessions", json={"name": "default"})
        body = {"session": "default", "chatId": "1@c.us", "text": "x"}
        response = await http.post("/api/sendText", json=body)
        assert response.status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"chatId": "1@c.us", "text": "x"},
        {"session": "default", "text": "x"},
        {"session": "default", "chatId": "1@c.us"},
    ],
)
async def test_missing_required_fields_are_a_400(
    raw_client: httpx.AsyncClient, sim: RunningSimulator, api_key: str, body: dict[str, str]
) -> None:
    response = await raw_client.post("/api/sendText", json=body, headers={"X-Api-Key": api_key})
    assert response.status_code == 400
    assert response.json()["error"] == "Bad Request"
    assert isinstance(response.json()["message"], list)
