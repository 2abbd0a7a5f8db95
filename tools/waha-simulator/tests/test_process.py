"""The simulator as a process: ``python -m chronoflow_waha_simulator`` with env settings."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import httpx

from chronoflow_waha_simulator.testing import eventually


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_the_module_serves_with_env_settings_and_auto_pairs() -> None:
    port = free_port()
    env = {
        **os.environ,
        "HTTP_PORT": str(port),
        "WAHA_API_KEY": "proc-key",
        "WHATSAPP_START_SESSION": "default",
        "WAHA_SIM_AUTO_PAIR_SECONDS": "0.1",
        "WAHA_SIM_STARTING_SECONDS": "0.05",
        "LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chronoflow_waha_simulator", env=env
    )
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"X-Api-Key": "proc-key"}
        ) as http:

            async def working() -> bool:
                try:
                    response = await http.get("/api/sessions/default")
                except httpx.TransportError:
                    return False
                return response.status_code == 200 and response.json()["status"] == "WORKING"

            await eventually(working, within=30)
            assert (await http.get("/api/sessions", headers={"X-Api-Key": "x"})).status_code == 401
    finally:
        proc.terminate()
        # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status tells it.
        assert await asyncio.wait_for(proc.wait(), 10) in (0, -15)
