"""Support for tests and benchmarks: the gateway and a WAHA simulator, both on loopback.

Not used by the service itself (it needs the simulator, a development dependency). The gateway
serves on a real port because the simulator delivers its ``session.status`` webhooks over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from chronoflow_waha_gateway.app import create_app
from chronoflow_waha_gateway.settings import WahaGatewaySettings
from chronoflow_waha_simulator.server import RunningSimulator, run_simulator
from chronoflow_waha_simulator.testing import eventually, fast_settings

WAHA_KEY = "waha-test-key-3c1d"
HMAC_KEY = "waha-hmac-test-key-8e52"
WEBHOOK_PATH = "/waha/webhooks/sessions/status"
#: WAHA's operations behind ``/waha/sessions`` (operation ids of WAHA's OpenAPI document).
SESSION_OPERATIONS = frozenset(
    {
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
    }
)
#: Every WAHA operation the gateway calls: the session routes and sending a text.
ALL_OPERATIONS = SESSION_OPERATIONS | {"ChattingController_sendText"}


def free_port() -> int:
    """A TCP port nobody listens on right now, on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serve(app: FastAPI, port: int = 0) -> AsyncIterator[str]:
    """Run ``app`` (and its lifespan) with uvicorn in this event loop; yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
            ws="none",
        )
    )
    task = asyncio.get_running_loop().create_task(server.serve(), name="uvicorn gateway")
    try:
        async with asyncio.timeout(20):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


@dataclass
class WahaStack:
    """A WAHA simulator and a gateway in front of it."""

    sim: RunningSimulator
    gateway: FastAPI
    gateway_url: str
    control: httpx.AsyncClient
    """The simulator's ``/_sim`` controls."""

    async def pair(self, session: str = "default") -> None:
        """Start the session if needed, wait for its QR, and "scan" it: WORKING afterwards."""

        async def waiting_for_scan() -> bool:
            found = self.sim.state.sessions.get(session)
            return found is not None and found.status.value == "SCAN_QR_CODE"

        await eventually(waiting_for_scan, within=10)
        paired = await self.control.post(f"/sessions/{session}/pair")
        assert paired.status_code == 200, paired.text

    async def messages(self, **query: str) -> list[dict[str, Any]]:
        """The simulator's record of delivered texts (``session=``, ``chatId=`` filter it)."""
        response = await self.control.get("/messages", params=query)
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found

    async def fault(self, **spec: Any) -> dict[str, Any]:
        """Switch a fault on (``kind=``, ``chatId=``, ``times=``, ``retryAfter=`` ...)."""
        response = await self.control.post("/faults", json=spec)
        assert response.status_code in (200, 201), response.text
        created: dict[str, Any] = response.json()
        return created

    async def webhooks_flushed(self) -> None:
        """Until every webhook the simulator queued has been delivered (or given up)."""
        response = await self.control.get("/webhooks", params={"flush": "true"})
        assert response.status_code == 200, response.text


@contextlib.asynccontextmanager
async def waha_stack(
    *,
    nats_url: str,
    database_url: str,
    start_sessions: tuple[str, ...] = ("default",),
    transport: httpx.AsyncBaseTransport | None = None,
    simulator: dict[str, Any] | None = None,
    **gateway_env: str,
) -> AsyncIterator[WahaStack]:
    """A simulator (sessions started, waiting for a scan) and a gateway wired to each other.

    ``gateway_env`` adds or overrides the gateway's environment (``WAHA_SEND_RATE_PER_SECOND``
    …); ``simulator`` overrides the simulator's settings by field name.
    """
    sim_port = free_port()
    env = {
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "CHRONOFLOW_PROFILE": "development",
        "WAHA_BASE_URL": f"http://127.0.0.1:{sim_port}",
        "WAHA_API_KEY": WAHA_KEY,
        "WAHA_WEBHOOK_HMAC_KEY": HMAC_KEY,
        "WAHA_SEND_RATE_PER_SECOND": "0",
        "WAHA_STATUS_POLL_SECONDS": "3600",
        **gateway_env,
    }
    gateway = create_app(WahaGatewaySettings.model_validate(env), waha_transport=transport)
    async with serve(gateway) as gateway_url:
        sim_values: dict[str, Any] = {
            "http_port": sim_port,
            "api_key": WAHA_KEY,
            "hook_urls": [gateway_url + WEBHOOK_PATH],
            "hook_hmac_key": HMAC_KEY,
            "start_sessions": list(start_sessions),
            **(simulator or {}),
        }
        sim_settings = fast_settings(**sim_values)
        async with (
            run_simulator(sim_settings) as sim,
            httpx.AsyncClient(base_url=f"{sim.base_url}/_sim") as control,
        ):
            yield WahaStack(sim=sim, gateway=gateway, gateway_url=gateway_url, control=control)
