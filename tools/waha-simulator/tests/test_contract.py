"""The contract checks themselves: the corrections, coverage of WAHA's operations, errors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from chronoflow_waha_simulator.contract import (
    ContractCheckingTransport,
    ContractViolationError,
    WahaContract,
    corrected,
    defects,
)
from chronoflow_waha_simulator.server import RunningSimulator
from chronoflow_waha_simulator.testing import eventually


def test_each_correction_is_still_needed_by_the_published_document(
    openapi_document: dict[str, Any],
) -> None:
    found = defects(openapi_document)
    assert found["nullable"] > 0
    assert found["boolean_required"] > 0
    assert found["string_enum_typed_object"] > 0
    assert defects(corrected(openapi_document)) == {
        "nullable": 0,
        "boolean_required": 0,
        "string_enum_typed_object": 0,
    }


def test_the_document_is_the_version_we_simulate(openapi_document: dict[str, Any]) -> None:
    assert openapi_document["info"]["version"] == "2026.7.1"


SESSION_OPERATIONS = {
    "SessionsController_list",
    "SessionsController_create",
    "SessionsController_get",
    "SessionsController_update",
    "SessionsController_delete",
    "SessionsController_start",
    "SessionsController_stop",
    "SessionsController_logout",
    "SessionsController_restart",
    "AuthController_getQR",
    "AuthController_requestCode",
    "ChattingController_sendText",
    "PingController_ping",
}


async def test_every_operation_the_gateway_uses_answers_per_the_contract(
    client: httpx.AsyncClient, transport: ContractCheckingTransport
) -> None:
    assert (await client.get("/ping")).status_code == 200
    await client.post("/api/sessions", json={"name": "default", "config": {"debug": False}})
    await client.get("/api/sessions", params={"all": "true", "expand": "apps"})

    async def asks() -> bool:
        return bool((await client.get("/api/sessions/default")).json()["status"] == "SCAN_QR_CODE")

    await eventually(asks)
    await client.get("/api/default/auth/qr", params={"format": "image"})
    await client.get(
        "/api/default/auth/qr", params={"format": "image"}, headers={"Accept": "application/json"}
    )
    await client.get("/api/default/auth/qr", params={"format": "raw"})
    await client.post("/api/default/auth/request-code", json={"phoneNumber": "12132132130"})
    await client.post("/_sim/sessions/default/pair")
    await client.post(
        "/api/sendText", json={"session": "default", "chatId": "1@c.us", "text": "hi"}
    )
    await client.put("/api/sessions/default", json={"config": {"debug": True}})
    for action in ("stop", "start", "restart", "logout"):
        await client.post(f"/api/sessions/default/{action}")
    await client.delete("/api/sessions/default")

    documented = {e.operation_id for e in transport.exchanges if e.response_documented}
    assert documented == SESSION_OPERATIONS
    assert all(e.status_code < 400 for e in transport.exchanges)


async def test_error_answers_are_json_objects(
    client: httpx.AsyncClient, transport: ContractCheckingTransport
) -> None:
    assert (await client.get("/api/sessions/nope")).status_code == 404
    assert (
        await client.post("/api/sendText", json={"session": "x", "chatId": "1@c.us", "text": "t"})
    ).status_code == 404
    assert [e.response_documented for e in transport.exchanges] == [False, False]


async def test_a_request_waha_would_refuse_is_a_violation(
    client: httpx.AsyncClient, sim: RunningSimulator
) -> None:
    with pytest.raises(ContractViolationError, match="chatId"):
        await client.post("/api/sendText", json={"session": "default", "text": "no chat"})
    with pytest.raises(ContractViolationError, match="no operation"):
        await client.get("/api/not-a-waha-route/at/all")


async def test_a_response_waha_would_not_send_is_a_violation(contract: WahaContract) -> None:
    def bad_session(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[{"name": "default", "status": "SLEEPING"}])

    transport = ContractCheckingTransport(contract, httpx.MockTransport(bad_session))
    async with httpx.AsyncClient(
        base_url="http://127.0.0.1:3000", transport=transport, headers={"X-Api-Key": "k"}
    ) as http:
        with pytest.raises(ContractViolationError, match="SessionsController_list 200 response"):
            await http.get("/api/sessions")


def test_a_webhook_waha_would_not_send_is_a_violation(contract: WahaContract) -> None:
    body = json.dumps({"event": "session.status", "session": "default"}).encode()
    with pytest.raises(ContractViolationError, match=r"webhook session\.status"):
        contract.check_webhook("session.status", body, {"content-type": "application/json"})


async def test_unknown_routes_answer_like_nestjs(raw_client: httpx.AsyncClient) -> None:
    response = await raw_client.get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {
        "message": "Cannot GET /nowhere",
        "error": "Not Found",
        "statusCode": 404,
    }
