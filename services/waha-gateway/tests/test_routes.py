"""``/waha/sessions`` through the gateway: every route reaches WAHA as its contract says, behind
ChronoFlow's API key, with WAHA's failures in ChronoFlow's error shape."""

from __future__ import annotations

import base64

import httpx

from chronoflow_devstack.embedded import NatsServer
from chronoflow_waha_gateway.testing import SESSION_OPERATIONS, WahaStack, free_port, waha_stack
from chronoflow_waha_simulator.contract import ContractCheckingTransport

PNG = b"\x89PNG\r\n\x1a\n"


async def test_every_session_route_is_proxied_per_the_contract(
    stack: WahaStack, client: httpx.AsyncClient, checked: ContractCheckingTransport
) -> None:
    created = await client.post(
        "/waha/sessions", json={"name": "sales", "config": {"metadata": {"team": "x"}}}
    )
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "sales"
    assert created.json()["status"] == "STARTING"
    await stack.pair("sales")

    listed = await client.get("/waha/sessions")
    assert listed.status_code == 200
    assert {s["name"]: s["status"] for s in listed.json()} == {
        "default": "SCAN_QR_CODE",
        "sales": "WORKING",
    }
    got = await client.get("/waha/sessions/sales")
    assert got.status_code == 200
    assert got.json()["me"]["id"].endswith("@c.us")
    updated = await client.put("/waha/sessions/sales", json={"config": {"debug": True}})
    assert updated.status_code == 200
    assert updated.json()["config"] == {"debug": True}

    for action, status in [
        ("stop", "STOPPED"),
        ("start", "STARTING"),
        ("restart", "STARTING"),
        ("logout", "STARTING"),
    ]:
        answer = await client.post(f"/waha/sessions/sales/{action}")
        assert answer.status_code == 200, (action, answer.text)
        assert answer.json()["status"] == status, action

    code = await client.post(
        "/waha/sessions/default/auth/request-code", json={"phoneNumber": "5511999990001"}
    )
    assert code.status_code == 200, code.text
    assert len(code.json()["code"]) == 9

    deleted = await client.delete("/waha/sessions/sales")
    assert deleted.status_code == 204
    assert [s["name"] for s in (await client.get("/waha/sessions")).json()] == ["default"]
    qr = await client.get("/waha/sessions/default/auth/qr")
    assert qr.status_code == 200

    assert {e.operation_id for e in checked.exchanges} >= SESSION_OPERATIONS
    assert all(e.response_documented for e in checked.exchanges)


async def test_the_qr_is_a_png_or_base64_json_by_accept(
    stack: WahaStack, client: httpx.AsyncClient
) -> None:
    png = await client.get("/waha/sessions/default/auth/qr")
    assert png.status_code == 200, png.text
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(PNG)
    assert png.headers["cache-control"] == "no-store"

    as_json = await client.get(
        "/waha/sessions/default/auth/qr", headers={"Accept": "application/json"}
    )
    assert as_json.status_code == 200
    assert as_json.json()["mimetype"] == "image/png"
    assert base64.b64decode(as_json.json()["data"]) == png.content

    raw = await client.get("/waha/sessions/default/auth/qr", params={"format": "raw"})
    assert raw.status_code == 200
    assert raw.json()["value"]


async def test_waha_failures_keep_chronoflows_error_shape(
    stack: WahaStack, client: httpx.AsyncClient
) -> None:
    missing = await client.get("/waha/sessions/ghost")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"

    taken = await client.post("/waha/sessions", json={"name": "default"})
    assert taken.status_code == 422
    assert taken.json()["error"]["code"] == "waha_rejected"

    await stack.pair("default")
    working_qr = await client.get("/waha/sessions/default/auth/qr")
    assert working_qr.status_code == 409
    error = working_qr.json()["error"]
    assert error["code"] == "session_status"
    assert "WORKING" in error["message"]

    bad_name = await client.get("/waha/sessions/not a name!")
    assert bad_name.status_code == 422
    assert bad_name.json()["error"]["code"] == "validation_error"
    bad_phone = await client.post(
        "/waha/sessions/default/auth/request-code", json={"phoneNumber": "call me"}
    )
    assert bad_phone.status_code == 422
    assert bad_phone.json()["error"]["fields"][0]["field"] == "phoneNumber"


async def test_every_session_route_needs_the_api_key(stack: WahaStack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url) as anon:
        for method, path in [
            ("GET", "/waha/sessions"),
            ("POST", "/waha/sessions"),
            ("GET", "/waha/sessions/default"),
            ("PUT", "/waha/sessions/default"),
            ("DELETE", "/waha/sessions/default"),
            ("POST", "/waha/sessions/default/start"),
            ("POST", "/waha/sessions/default/stop"),
            ("POST", "/waha/sessions/default/logout"),
            ("POST", "/waha/sessions/default/restart"),
            ("GET", "/waha/sessions/default/auth/qr"),
            ("POST", "/waha/sessions/default/auth/request-code"),
        ]:
            for headers in ({}, {"Authorization": "Bearer cf_not-a-key"}):
                answer = await anon.request(method, path, headers=headers, json={})
                assert answer.status_code == 401, (method, path, answer.text)
                assert answer.json()["error"]["code"] == "unauthorized"
                assert answer.headers["www-authenticate"] == "Bearer"
        # Health and readiness stay open, as everywhere.
        assert (await anon.get("/health")).status_code == 200
    # Nothing reached WAHA: the session was neither stopped nor deleted.
    assert stack.sim.state.sessions.get("default") is not None
    assert stack.sim.state.sessions.get("default").status.value != "STOPPED"  # type: ignore[union-attr]


async def test_waha_away_is_a_503(nats_server: NatsServer, database_url: str, api_key: str) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    async with (
        waha_stack(nats_url=nats_server.url, database_url=database_url, WAHA_BASE_URL=nobody) as s,
        httpx.AsyncClient(
            base_url=s.gateway_url, headers={"Authorization": f"Bearer {api_key}"}
        ) as client,
    ):
        answer = await client.get("/waha/sessions")
        ready = await client.get("/ready")
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "waha_unavailable"
    # WAHA being away does not make the gateway unready: its own dependencies are fine.
    assert ready.status_code == 200
