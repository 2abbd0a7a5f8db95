"""The WAHA client against the simulator, every exchange checked against WAHA's contract."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from chronoflow_waha_gateway.testing import ALL_OPERATIONS
from chronoflow_waha_gateway.waha_client import (
    SessionStatus,
    WahaClient,
    WahaClientError,
    WahaError,
    WahaNotFoundError,
    WahaProtocolError,
    WahaRateLimitedError,
    WahaServerError,
    WahaSessionNotWorkingError,
    WahaSessionStatusError,
    WahaTransportError,
    WahaUnauthorizedError,
    carries_429,
    parse_retry_after,
)
from chronoflow_waha_simulator.contract import ContractCheckingTransport, WahaContract
from chronoflow_waha_simulator.server import RunningSimulator, run_simulator
from chronoflow_waha_simulator.testing import eventually, fast_settings

KEY = "gateway-test-key-5f2a"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    """A WAHA simulator on a free loopback port that requires ``KEY``."""
    async with run_simulator(fast_settings(api_key=KEY)) as running:
        yield running


@pytest.fixture
def transport(waha_contract: WahaContract) -> ContractCheckingTransport:
    """Checks every request the client sends and every answer it gets."""
    return ContractCheckingTransport(waha_contract)


@pytest.fixture
async def waha(
    sim: RunningSimulator, transport: ContractCheckingTransport
) -> AsyncIterator[WahaClient]:
    """The client under test, pointed at the simulator."""
    async with WahaClient(sim.base_url, KEY, transport=transport, timeout=5) as client:
        yield client


@pytest.fixture
async def control(sim: RunningSimulator) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator's ``/_sim`` controls (scan the QR, faults, the delivered record)."""
    async with httpx.AsyncClient(base_url=f"{sim.base_url}/_sim") as http:
        yield http


async def scan_wanted(waha: WahaClient, name: str) -> None:
    async def asks() -> bool:
        return (await waha.get_session(name)).status == SessionStatus.SCAN_QR_CODE

    await eventually(asks)


async def working(waha: WahaClient, control: httpx.AsyncClient, name: str = "default") -> None:
    await waha.create_session(name)
    await scan_wanted(waha, name)
    assert (await control.post(f"/sessions/{name}/pair")).status_code == 200


async def test_every_operation_round_trips_per_the_contract(
    waha: WahaClient, control: httpx.AsyncClient, transport: ContractCheckingTransport
) -> None:
    created = await waha.create_session("default", config={"metadata": {"channel": "c1"}})
    assert created.name == "default"
    assert created.status == SessionStatus.STARTING
    assert created.config == {"metadata": {"channel": "c1"}}
    await scan_wanted(waha, "default")

    png = await waha.get_qr_png("default")
    assert png.startswith(PNG)
    image = await waha.get_qr_base64("default")
    assert image.mimetype == "image/png"
    assert base64.b64decode(image.data) == png
    assert (await waha.get_qr_value("default")).startswith("2@")
    code = await waha.request_code("default", "12132132130")
    assert len(code) == 9

    await control.post("/sessions/default/pair")
    session = await waha.get_session("default")
    assert session.is_working
    assert session.me is not None
    assert session.me.id == "12132132130@c.us"

    message_id = await waha.send_text("default", "5511999999999@c.us", "hello", link_preview=False)
    record = (await control.get("/messages")).json()
    assert [(m["id"], m["session"], m["chatId"], m["text"]) for m in record] == [
        (message_id, "default", "5511999999999@c.us", "hello")
    ]

    updated = await waha.update_session("default", config={"debug": True})
    assert updated.config == {"debug": True}
    assert (await waha.stop_session("default")).status == SessionStatus.STOPPED
    assert [s.name for s in await waha.list_sessions()] == ["default"]
    assert await waha.list_sessions(include_stopped=False) == []
    assert (await waha.start_session("default")).status == SessionStatus.STARTING
    assert (await waha.restart_session("default")).status == SessionStatus.STARTING
    assert (await waha.logout_session("default")).status == SessionStatus.STARTING
    await waha.delete_session("default")
    assert await waha.list_sessions() == []

    assert {e.operation_id for e in transport.exchanges} == ALL_OPERATIONS
    assert all(e.response_documented for e in transport.exchanges)


async def test_sending_through_a_session_that_is_not_working(
    waha: WahaClient, control: httpx.AsyncClient
) -> None:
    with pytest.raises(WahaSessionNotWorkingError) as missing:
        await waha.send_text("default", "1@c.us", "x")
    assert missing.value.status is None
    assert missing.value.status_code == 404
    assert "session 'default' is not running" in str(missing.value)

    await waha.create_session("default")
    await scan_wanted(waha, "default")
    with pytest.raises(WahaSessionNotWorkingError) as scanning:
        await waha.send_text("default", "1@c.us", "x")
    error = scanning.value
    assert error.status_code == 422
    assert error.session == "default"
    assert error.status == "SCAN_QR_CODE"
    assert error.expected == ["WORKING"]
    assert not error.retryable
    assert str(error) == "WAHA sendText: HTTP 422: session 'default' is SCAN_QR_CODE, not WORKING"
    assert (await control.get("/messages")).json() == []


async def test_qr_of_a_working_session_is_a_status_error(
    waha: WahaClient, control: httpx.AsyncClient
) -> None:
    await working(waha, control)
    with pytest.raises(WahaSessionStatusError) as caught:
        await waha.get_qr_png("default")
    assert not isinstance(caught.value, WahaSessionNotWorkingError)
    assert caught.value.status == "WORKING"
    assert caught.value.expected == ["SCAN_QR_CODE"]
    with pytest.raises(WahaSessionStatusError):
        await waha.request_code("nope", "123")


async def test_429_with_retry_after(waha: WahaClient, control: httpx.AsyncClient) -> None:
    await working(waha, control)
    await control.post(
        "/faults", json={"kind": "rate_limit", "chatId": "2@c.us", "times": 1, "retryAfter": 7}
    )
    with pytest.raises(WahaRateLimitedError) as caught:
        await waha.send_text("default", "2@c.us", "x")
    assert caught.value.status_code == 429
    assert caught.value.retry_after == 7.0
    assert caught.value.retryable
    assert await waha.send_text("default", "2@c.us", "x")


async def test_a_500_that_carries_429_is_a_rate_limit(
    waha: WahaClient, control: httpx.AsyncClient
) -> None:
    await working(waha, control)
    await control.post("/faults", json={"kind": "server_error_429", "times": 1})
    with pytest.raises(WahaRateLimitedError) as caught:
        await waha.send_text("default", "1@c.us", "your order 429 shipped")
    assert caught.value.status_code == 500
    assert caught.value.retry_after is None


async def test_a_plain_500_is_a_server_error_even_if_the_text_says_429(
    waha: WahaClient, control: httpx.AsyncClient
) -> None:
    await working(waha, control)
    await control.post("/faults", json={"kind": "server_error", "times": 1})
    with pytest.raises(WahaServerError) as caught:
        await waha.send_text("default", "1@c.us", "your order 429 shipped")
    assert not isinstance(caught.value, WahaRateLimitedError)
    assert caught.value.retryable
    assert caught.value.detail == "Simulated engine failure"


async def test_a_slow_waha_is_a_transport_error(
    sim: RunningSimulator, control: httpx.AsyncClient, transport: ContractCheckingTransport
) -> None:
    await control.post(
        "/faults", json={"kind": "delay", "path": "/api/sessions", "delaySeconds": 2}
    )
    async with WahaClient(sim.base_url, KEY, transport=transport, timeout=0.2) as impatient:
        with pytest.raises(WahaTransportError) as caught:
            await impatient.list_sessions()
    assert caught.value.retryable
    assert "timed out" in str(caught.value)


async def test_no_server_is_a_transport_error() -> None:
    async with WahaClient("http://127.0.0.1:9", KEY, timeout=2) as nowhere:
        with pytest.raises(WahaTransportError):
            await nowhere.list_sessions()


async def test_a_wrong_key_and_no_key_are_refused_and_never_echoed(
    sim: RunningSimulator, transport: ContractCheckingTransport
) -> None:
    wrong = "wrong-key-9d1c"
    async with WahaClient(sim.base_url, wrong, transport=transport) as client:
        with pytest.raises(WahaUnauthorizedError) as caught:
            await client.list_sessions()
    assert caught.value.status_code == 401
    assert wrong not in str(caught.value)
    assert wrong not in repr(caught.value.args)
    async with WahaClient(sim.base_url, None) as keyless:
        with pytest.raises(WahaUnauthorizedError):
            await keyless.get_session("default")


async def test_an_api_key_in_an_error_body_is_redacted() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        key = request.headers["X-Api-Key"]
        return httpx.Response(400, json={"message": f"bad request with key {key}"})

    async with WahaClient(
        "http://127.0.0.1:3000", KEY, transport=httpx.MockTransport(echo)
    ) as client:
        with pytest.raises(WahaClientError) as caught:
            await client.send_text("default", "1@c.us", "x")
    assert KEY not in str(caught.value)
    assert KEY not in caught.value.detail
    assert "***" in caught.value.detail


async def test_unknown_sessions_and_taken_names(waha: WahaClient) -> None:
    with pytest.raises(WahaNotFoundError):
        await waha.get_session("ghost")
    with pytest.raises(WahaNotFoundError):
        await waha.start_session("ghost")
    await waha.create_session("taken", start=False)
    with pytest.raises(WahaClientError) as caught:
        await waha.create_session("taken")
    assert caught.value.status_code == 422
    assert "already exists" in str(caught.value)


@pytest.mark.parametrize("name", ["", "../x", "a/b", "a b", "default?all=1", "x" * 65, "ü"])
async def test_session_names_are_validated_before_any_request(name: str) -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"sent {request.url}")

    async with WahaClient(
        "http://127.0.0.1:3000", KEY, transport=httpx.MockTransport(unreachable)
    ) as client:
        with pytest.raises(ValueError, match="invalid WAHA session name"):
            await client.get_session(name)
        with pytest.raises(ValueError, match="invalid WAHA session name"):
            await client.send_text(name, "1@c.us", "x")


@pytest.mark.parametrize("base_url", ["", "ftp://waha", "/relative", "waha:3000"])
def test_the_base_url_must_be_absolute_http(base_url: str) -> None:
    with pytest.raises(ValueError, match="absolute http"):
        WahaClient(base_url, KEY)


async def test_answers_the_contract_does_not_give_are_protocol_errors() -> None:
    answers = {
        "/api/sendText": httpx.Response(201, json={"body": "no id"}),
        "/api/sessions": httpx.Response(200, json={"not": "a list"}),
        "/api/sessions/default": httpx.Response(200, text="<html>"),
        "/api/default/auth/qr": httpx.Response(200, content=b"GIF89a"),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return answers[request.url.path]

    async with WahaClient(
        "http://127.0.0.1:3000", KEY, transport=httpx.MockTransport(handler)
    ) as client:
        with pytest.raises(WahaProtocolError):
            await client.send_text("default", "1@c.us", "x")
        with pytest.raises(WahaProtocolError):
            await client.list_sessions()
        with pytest.raises(WahaProtocolError):
            await client.get_session("default")
        with pytest.raises(WahaProtocolError):
            await client.get_qr_png("default")


async def test_a_raw_id_object_is_read_as_its_serialized_form() -> None:
    serialized = "true_1@c.us_3EB0ABCDEF"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"id": {"fromMe": True, "_serialized": serialized}})

    async with WahaClient(
        "http://127.0.0.1:3000", KEY, transport=httpx.MockTransport(handler)
    ) as client:
        assert await client.send_text("default", "1@c.us", "x") == serialized


def test_every_error_is_a_waha_error() -> None:
    for kind in (
        WahaTransportError,
        WahaProtocolError,
        WahaRateLimitedError,
        WahaServerError,
        WahaClientError,
        WahaUnauthorizedError,
        WahaNotFoundError,
        WahaSessionStatusError,
        WahaSessionNotWorkingError,
    ):
        assert issubclass(kind, WahaError)
    assert issubclass(WahaSessionNotWorkingError, WahaClientError)


NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("inf", None),
        ("nan", None),
        ("soon", None),
        ("", None),
        (None, None),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - timedelta(seconds=90), usegmt=True), 0.0),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"exception": {"message": "rate-overlimit", "data": 429}}', True),
        ('{"statusCode": 500, "exception": {"output": {"statusCode": 429}}}', True),
        ('{"message": "Request failed with status code 429"}', True),
        ("Too Many Requests", True),
        ('{"statusCode": 500, "request": {"body": {"text": "order 429 shipped"}}}', False),
        ('{"statusCode": 500, "timestamp": 1700004290001}', False),
        ('{"statusCode": 500, "exception": {"message": "boom"}}', False),
        ("", False),
    ],
)
def test_carries_429(body: str, expected: bool) -> None:
    assert carries_429(body) is expected
