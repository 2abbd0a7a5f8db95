"""``GET /api/{session}/auth/qr`` and ``POST /api/{session}/auth/request-code``."""

from __future__ import annotations

import base64
import io

import httpx
import segno

from chronoflow_waha_simulator.testing import eventually

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def waiting_for_scan(client: httpx.AsyncClient, name: str) -> None:
    await client.post("/api/sessions", json={"name": name})

    async def asks() -> bool:
        return bool((await client.get(f"/api/sessions/{name}")).json()["status"] == "SCAN_QR_CODE")

    await eventually(asks)


def png_of(value: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(value, error="l", micro=False).save(buffer, kind="png", scale=6, border=4)
    return buffer.getvalue()


async def test_the_qr_is_a_png_of_the_raw_value(client: httpx.AsyncClient) -> None:
    await waiting_for_scan(client, "default")
    raw = await client.get("/api/default/auth/qr", params={"format": "raw"})
    assert raw.status_code == 200
    value = raw.json()["value"]
    assert value.startswith("2@")

    image = await client.get("/api/default/auth/qr", params={"format": "image"})
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(PNG_SIGNATURE)
    assert image.content == png_of(value)  # a real QR code of exactly that value

    as_json = await client.get(
        "/api/default/auth/qr", params={"format": "image"}, headers={"Accept": "application/json"}
    )
    assert as_json.json()["mimetype"] == "image/png"
    assert base64.b64decode(as_json.json()["data"]) == image.content


async def test_format_defaults_to_image_as_in_waha(
    raw_client: httpx.AsyncClient, client: httpx.AsyncClient, api_key: str
) -> None:
    await waiting_for_scan(client, "default")
    response = await raw_client.get("/api/default/auth/qr", headers={"X-Api-Key": api_key})
    assert response.content.startswith(PNG_SIGNATURE)
    bad = await raw_client.get(
        "/api/default/auth/qr", params={"format": "svg"}, headers={"X-Api-Key": api_key}
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "Bad Request"


async def test_no_qr_unless_the_session_asks_for_a_scan(client: httpx.AsyncClient) -> None:
    stopped = await client.get("/api/ghost/auth/qr", params={"format": "image"})
    assert stopped.status_code == 404
    assert stopped.json()["message"].startswith("We didn't find a session with name 'ghost'")

    await waiting_for_scan(client, "w")
    await client.post("/_sim/sessions/w/pair")
    working = await client.get("/api/w/auth/qr", params={"format": "image"})
    assert working.status_code == 422
    assert working.json() == {
        "error": "Session status is not as expected. Try again later or restart the session",
        "session": "w",
        "status": "WORKING",
        "expected": ["SCAN_QR_CODE"],
    }


async def test_request_code_then_the_phone_pairs_as_that_number(client: httpx.AsyncClient) -> None:
    await waiting_for_scan(client, "code")
    response = await client.post("/api/code/auth/request-code", json={"phoneNumber": "12132132130"})
    assert response.status_code == 201
    code = response.json()["code"]
    assert len(code) == 9
    assert code[4] == "-"
    paired = await client.post("/_sim/sessions/code/pair")
    assert paired.json()["me"]["id"] == "12132132130@c.us"


async def test_request_code_needs_a_phone_number(
    raw_client: httpx.AsyncClient, client: httpx.AsyncClient, api_key: str
) -> None:
    await waiting_for_scan(client, "code")
    response = await raw_client.post(
        "/api/code/auth/request-code", json={}, headers={"X-Api-Key": api_key}
    )
    assert response.status_code == 400
    assert response.json()["statusCode"] == 400
