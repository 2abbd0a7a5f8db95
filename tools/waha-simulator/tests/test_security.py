"""``X-Api-Key`` enforcement, as WAHA does it when ``WAHA_API_KEY`` is set."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from chronoflow_waha_simulator.server import run_simulator
from chronoflow_waha_simulator.testing import fast_settings


@pytest.mark.parametrize("headers", [{}, {"X-Api-Key": "wrong"}, {"X-Api-Key": ""}])
async def test_a_missing_or_wrong_key_is_401(
    raw_client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for method, path in [
        ("GET", "/api/sessions"),
        ("POST", "/api/sessions/default/start"),
        ("GET", "/api/default/auth/qr"),
        ("POST", "/api/sendText"),
    ]:
        response = await raw_client.request(method, path, headers=headers)
        assert response.status_code == 401, path
        assert response.json() == {"message": "Unauthorized", "statusCode": 401}


async def test_the_right_key_passes(raw_client: httpx.AsyncClient, api_key: str) -> None:
    response = await raw_client.get("/api/sessions", headers={"X-Api-Key": api_key})
    assert response.status_code == 200


async def test_ping_ready_and_simulator_controls_need_no_key(raw_client: httpx.AsyncClient) -> None:
    assert (await raw_client.get("/ping")).json() == {"message": "pong"}
    assert (await raw_client.get("/ready")).status_code == 200
    assert (await raw_client.get("/_sim/messages")).status_code == 200


async def test_a_sha512_configured_key() -> None:
    hashed = "sha512:" + hashlib.sha512(b"plain-key").hexdigest()
    async with (
        run_simulator(fast_settings(api_key=hashed)) as sim,
        httpx.AsyncClient(base_url=sim.base_url) as http,
    ):
        ok = await http.get("/api/sessions", headers={"X-Api-Key": "plain-key"})
        assert ok.status_code == 200
        refused = await http.get("/api/sessions", headers={"X-Api-Key": hashed})
        assert refused.status_code == 401


async def test_without_a_configured_key_nothing_is_checked() -> None:
    async with (
        run_simulator(fast_settings()) as sim,
        httpx.AsyncClient(base_url=sim.base_url) as http,
    ):
        assert (await http.get("/api/sessions")).status_code == 200
