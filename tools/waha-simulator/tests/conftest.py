"""Fixtures: a simulator on a free loopback port, a webhook sink, and a contract-checked client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chronoflow_waha_simulator.contract import (
    ContractCheckingTransport,
    WahaContract,
    load_contract,
    openapi_path,
)
from chronoflow_waha_simulator.server import RunningSimulator, run_simulator
from chronoflow_waha_simulator.testing import WebhookSink, fast_settings, run_webhook_sink

REPO_ROOT = Path(__file__).resolve().parents[3]
OPENAPI = openapi_path(REPO_ROOT)
API_KEY = "sim-test-key"
HOOK_KEY = "sim-hook-secret"


@pytest.fixture(scope="session")
def openapi_document() -> dict[str, Any]:
    """WAHA's published OpenAPI document as JSON, uncorrected."""
    if not OPENAPI.is_file():
        pytest.skip(f"WAHA's OpenAPI document is absent (expected at {OPENAPI.resolve()})")
    document: dict[str, Any] = json.loads(OPENAPI.read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="session")
def contract() -> WahaContract:
    """WAHA's published contract, read from the shared folder beside the repository."""
    if not OPENAPI.is_file():
        pytest.skip(f"WAHA's OpenAPI document is absent (expected at {OPENAPI.resolve()})")
    return load_contract(OPENAPI.resolve())


@pytest.fixture
def api_key() -> str:
    """The key the ``sim`` fixture requires in ``X-Api-Key``."""
    return API_KEY


@pytest.fixture
def hook_key() -> str:
    """The HMAC key of the ``sim`` fixture's global webhook."""
    return HOOK_KEY


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    """A webhook receiver on a free loopback port."""
    async with run_webhook_sink() as receiver:
        yield receiver


@pytest.fixture
async def sim(sink: WebhookSink) -> AsyncIterator[RunningSimulator]:
    """A simulator with an API key whose global webhook (signed with HOOK_KEY) goes to the sink."""
    settings = fast_settings(api_key=API_KEY, hook_urls=[sink.url], hook_hmac_key=HOOK_KEY)
    async with run_simulator(settings) as running:
        yield running


@pytest.fixture
async def transport(contract: WahaContract) -> ContractCheckingTransport:
    """A transport that checks every exchange against WAHA's contract."""
    return ContractCheckingTransport(contract)


@pytest.fixture
async def client(
    sim: RunningSimulator, transport: ContractCheckingTransport
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client to the simulator, with the API key, checked against the contract."""
    async with httpx.AsyncClient(
        base_url=sim.base_url, transport=transport, headers={"X-Api-Key": API_KEY}, timeout=10
    ) as http:
        yield http


@pytest.fixture
async def raw_client(sim: RunningSimulator) -> AsyncIterator[httpx.AsyncClient]:
    """An unchecked client without the API key, for requests WAHA would refuse."""
    async with httpx.AsyncClient(base_url=sim.base_url, timeout=10) as http:
        yield http
