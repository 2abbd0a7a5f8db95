"""The gateway against a WAHA simulator on loopback, on the session's real NATS and Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_devstack.embedded import NatsServer
from chronoflow_platform import apikeys
from chronoflow_waha_gateway.testing import WahaStack, waha_stack
from chronoflow_waha_simulator.contract import (
    ContractCheckingTransport,
    WahaContract,
    load_contract,
    openapi_path,
)

OPENAPI = openapi_path(Path(__file__).resolve().parents[3])


@pytest.fixture(scope="session")
def waha_contract() -> WahaContract:
    """WAHA's published contract, read from the shared folder beside the repository."""
    if not OPENAPI.is_file():
        pytest.skip(f"WAHA's OpenAPI document is absent (expected at {OPENAPI.resolve()})")
    return load_contract(OPENAPI.resolve())


@pytest.fixture
def checked(waha_contract: WahaContract) -> ContractCheckingTransport:
    """Checks every exchange between the gateway and the simulator against WAHA's contract."""
    return ContractCheckingTransport(waha_contract)


@pytest.fixture
async def stack(
    nats_server: NatsServer, database_url: str, checked: ContractCheckingTransport
) -> AsyncIterator[WahaStack]:
    """Simulator (session ``default`` waiting for a scan) and gateway, pacing off."""
    async with waha_stack(
        nats_url=nats_server.url, database_url=database_url, transport=checked
    ) as running:
        yield running


@pytest.fixture
async def api_key(engine: AsyncEngine) -> str:
    """A valid ChronoFlow API key."""
    _, key = await apikeys.create_key(engine, "waha-gateway tests")
    return key


@pytest.fixture
async def client(stack: WahaStack, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the gateway with the API key."""
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10
    ) as http:
        yield http
