"""The guarded client against real local servers. Every request here targets 127.0.0.1 or ::1."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TypeAlias

import aiohttp
import httpx
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from httpx_aiohttp.transport import map_aiohttp_exceptions
from prometheus_client import CollectorRegistry

from chronoflow_egress import (
    MAX_BODY_BYTES,
    BlockReason,
    EgressBlocked,
    EgressMetrics,
    EgressPolicy,
    StaticResolver,
    build_client,
    send_capped,
)
from chronoflow_egress.client import _httpx_error

ClientFactory: TypeAlias = Callable[..., httpx.AsyncClient]

BIG_BODY_BYTES = 10 * 1024 * 1024


@dataclass
class Sink:
    """A local aiohttp server on 127.0.0.1 that records what reached it."""

    port: int
    received: list[web.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def url(self, path: str = "/ok", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _big(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.content_length = BIG_BODY_BYTES
    await response.prepare(request)
    chunk = b"x" * (256 * 1024)
    try:
        for _ in range(BIG_BODY_BYTES // len(chunk)):
            await response.write(chunk)
    except (ConnectionResetError, asyncio.CancelledError):
        # The client stops reading at its cap and drops the connection; that is the point.
        pass
    return response


async def _big_gzip(request: web.Request) -> web.Response:
    return web.Response(
        body=gzip.compress(b"z" * BIG_BODY_BYTES),
        headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
    )


async def _redirect(request: web.Request) -> web.Response:
    status = int(request.query.get("status", "302"))
    return web.Response(status=status, headers={"Location": request.query["to"]})


async def _loop(request: web.Request) -> web.Response:
    raise web.HTTPFound("/loop")


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("s", "2")))
    return web.Response(text="late")


async def _cookie(request: web.Request) -> web.Response:
    response = web.Response(text="cookie set")
    response.set_cookie("session", "s3cr3t")
    return response


async def _start_sink() -> tuple[Sink, web.AppRunner]:
    sink_holder: list[Sink] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        sink_holder[0].received.append(request)
        sink_holder[0].bodies.append(await request.read())
        return await handler(request)

    app = web.Application(middlewares=[record])
    app.router.add_route("*", "/ok", _ok)
    app.router.add_get("/big", _big)
    app.router.add_get("/big-gzip", _big_gzip)
    app.router.add_route("*", "/redirect", _redirect)
    app.router.add_get("/loop", _loop)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/cookie", _cookie)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    sink = Sink(port=port)
    sink_holder.append(sink)
    return sink, runner


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    found, runner = await _start_sink()
    yield found
    await runner.cleanup()


@pytest.fixture
async def other_sink() -> AsyncIterator[Sink]:
    found, runner = await _start_sink()
    yield found
    await runner.cleanup()


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    clients: list[httpx.AsyncClient] = []

    def make(allow: str = "", **kwargs: object) -> httpx.AsyncClient:
        policy = EgressPolicy.from_allowlist(allow, allowlist_permitted=bool(allow))
        kwargs.setdefault("timeout", 5.0)
        client = build_client(policy, **kwargs)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_loopback_is_reachable_with_the_allowlist_on(
    make_client: ClientFactory, sink: Sink
) -> None:
    client = make_client("127.0.0.0/8")
    response = await client.post(sink.url(), content=b'{"a": 1}')
    assert response.status_code == 200
    assert response.text == "ok"
    assert sink.bodies == [b'{"a": 1}']


async def test_loopback_is_blocked_with_the_allowlist_off(
    make_client: ClientFactory, sink: Sink
) -> None:
    registry = CollectorRegistry()
    client = make_client(metrics=EgressMetrics(registry))
    with pytest.raises(EgressBlocked) as raised:
        await client.get(sink.url())
    assert raised.value.reason is BlockReason.LOOPBACK
    assert sink.received == []
    assert registry.get_sample_value("chronoflow_egress_blocked_total", {"reason": "loopback"}) == 1


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.2",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[64:ff9b::7f00:1]",
        "2130706433",
        "0x7f000001",
        "017700000001",
        "127.1",
        "localhost",
    ],
)
async def test_every_loopback_spelling_is_blocked(
    make_client: ClientFactory, sink: Sink, host: str
) -> None:
    client = make_client()
    with pytest.raises(EgressBlocked) as raised:
        await client.get(sink.url(host=host))
    assert raised.value.reason is BlockReason.LOOPBACK
    assert sink.received == []


async def test_a_name_resolving_to_loopback_is_blocked_before_connecting(
    make_client: ClientFactory, sink: Sink
) -> None:
    resolver = StaticResolver({"webhook.test": ["127.0.0.1"]})
    client = make_client(resolver=resolver)
    with pytest.raises(EgressBlocked) as raised:
        await client.get(sink.url(host="webhook.test"))
    assert raised.value.reason is BlockReason.LOOPBACK
    assert resolver.asked == ["webhook.test"]
    assert sink.received == []


async def test_every_refused_request_is_counted_once(
    make_client: ClientFactory, sink: Sink
) -> None:
    """Concurrent requests for one name share one resolution; each is still counted."""
    registry = CollectorRegistry()
    resolver = StaticResolver({"webhook.test": ["127.0.0.1"]})
    client = make_client(resolver=resolver, metrics=EgressMetrics(registry))
    results = await asyncio.gather(
        *(client.get(sink.url(host="webhook.test")) for _ in range(5)),
        client.get(sink.url(host="[::1]")),
        client.get("gopher://127.0.0.1/"),
        return_exceptions=True,
    )
    assert all(isinstance(r, EgressBlocked) for r in results)

    def count(reason: str) -> float | None:
        return registry.get_sample_value("chronoflow_egress_blocked_total", {"reason": reason})

    assert (count("loopback"), count("scheme"), count("private")) == (6, 1, 0)
    assert sink.received == []


async def test_a_named_sink_on_the_allowlist_is_reached(
    make_client: ClientFactory, sink: Sink
) -> None:
    resolver = StaticResolver({"sink.test": ["127.0.0.1"]})
    client = make_client(f"sink.test:{sink.port}", resolver=resolver)
    response = await client.get(sink.url(host="sink.test"))
    assert response.status_code == 200
    assert sink.received[0].headers["Host"] == f"sink.test:{sink.port}"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "ws://127.0.0.1/"])
async def test_only_http_and_https_leave(make_client: ClientFactory, url: str) -> None:
    client = make_client("127.0.0.0/8")
    with pytest.raises(EgressBlocked) as raised:
        await client.get(url)
    assert raised.value.reason is BlockReason.SCHEME


async def test_redirects_are_not_followed_by_default(
    make_client: ClientFactory, sink: Sink, other_sink: Sink
) -> None:
    client = make_client("127.0.0.0/8")
    target = other_sink.url()
    result = await send_capped(
        client, client.build_request("GET", sink.url(f"/redirect?to={target}"))
    )
    assert result.status == 302
    assert result.redirects == 0
    assert other_sink.received == []


async def test_a_redirect_to_a_non_allowlisted_loopback_port_is_blocked(
    make_client: ClientFactory, sink: Sink, other_sink: Sink
) -> None:
    client = make_client(f"127.0.0.1:{sink.port}")
    request = client.build_request("GET", sink.url(f"/redirect?to={other_sink.url()}"))
    with pytest.raises(EgressBlocked) as raised:
        await send_capped(client, request, follow_redirects=True)
    assert raised.value.reason is BlockReason.LOOPBACK
    assert len(sink.received) == 1
    assert other_sink.received == []


async def test_a_redirect_to_another_scheme_is_blocked(
    make_client: ClientFactory, sink: Sink
) -> None:
    client = make_client("127.0.0.0/8")
    request = client.build_request("GET", sink.url("/redirect?to=file:///etc/passwd"))
    with pytest.raises(EgressBlocked) as raised:
        await send_capped(client, request, follow_redirects=True)
    assert raised.value.reason is BlockReason.SCHEME


async def test_followed_redirects_drop_credentials_across_origins(
    make_client: ClientFactory, sink: Sink, other_sink: Sink
) -> None:
    client = make_client("127.0.0.0/8")
    request = client.build_request(
        "POST",
        sink.url(f"/redirect?status=307&to={other_sink.url()}"),
        content=b"payload",
        headers={"Authorization": "Bearer t", "X-Api-Key": "k", "X-Trace": "kept"},
    )
    result = await send_capped(
        client, request, follow_redirects=True, sensitive_headers=["x-api-key"]
    )
    assert result.status == 200
    assert result.redirects == 1
    assert result.url == httpx.URL(other_sink.url())
    seen = other_sink.received[0]
    assert seen.method == "POST"
    assert other_sink.bodies == [b"payload"]
    assert "Authorization" not in seen.headers
    assert "X-Api-Key" not in seen.headers
    assert seen.headers["X-Trace"] == "kept"
    assert seen.headers["Host"] == f"127.0.0.1:{other_sink.port}"


async def test_a_303_turns_a_post_into_a_get_without_a_body(
    make_client: ClientFactory, sink: Sink
) -> None:
    client = make_client("127.0.0.0/8")
    request = client.build_request(
        "POST", sink.url("/redirect?status=303&to=/ok"), content=b"payload"
    )
    result = await send_capped(client, request, follow_redirects=True)
    assert result.status == 200
    assert sink.received[1].method == "GET"
    assert sink.bodies[1] == b""


async def test_a_garbled_redirect_location_is_a_protocol_error(
    make_client: ClientFactory, sink: Sink
) -> None:
    client = make_client("127.0.0.0/8")
    request = client.build_request("GET", sink.url("/redirect?to=http://[::1"))
    with pytest.raises(httpx.RemoteProtocolError):
        await send_capped(client, request, follow_redirects=True)


async def test_redirect_hops_are_bounded(make_client: ClientFactory, sink: Sink) -> None:
    client = make_client("127.0.0.0/8")
    with pytest.raises(httpx.TooManyRedirects):
        await send_capped(
            client, client.build_request("GET", sink.url("/loop")), follow_redirects=True
        )
    assert len(sink.received) == EgressPolicy().max_redirects + 1


async def test_a_10_mb_response_is_capped(make_client: ClientFactory, sink: Sink) -> None:
    client = make_client("127.0.0.0/8")
    result = await send_capped(client, client.build_request("GET", sink.url("/big")))
    assert result.status == 200
    assert len(result.body) == MAX_BODY_BYTES
    assert result.truncated
    assert result.duration_s > 0
    assert result.snippet() == "x" * 1000
    # The pool is still usable after abandoning a body half-way.
    again = await send_capped(client, client.build_request("GET", sink.url()))
    assert (again.body, again.truncated) == (b"ok", False)


@pytest.mark.parametrize(
    ("max_body", "body", "truncated"),
    [
        (BIG_BODY_BYTES, b"x" * BIG_BODY_BYTES, False),  # exactly the cap: all of it, whole
        (BIG_BODY_BYTES - 1, b"x" * (BIG_BODY_BYTES - 1), True),  # one byte short of it
        (0, b"", True),
    ],
)
async def test_the_cap_is_exact_across_chunks(
    make_client: ClientFactory, sink: Sink, max_body: int, body: bytes, truncated: bool
) -> None:
    # /big arrives in many 256 KiB writes, so the cap falls inside a chunk or on its edge.
    client = make_client("127.0.0.0/8")
    result = await send_capped(
        client, client.build_request("GET", sink.url("/big")), max_body=max_body
    )
    assert (result.body, result.truncated) == (body, truncated)


async def test_the_cap_applies_to_the_decoded_body(make_client: ClientFactory, sink: Sink) -> None:
    client = make_client("127.0.0.0/8")
    result = await send_capped(
        client, client.build_request("GET", sink.url("/big-gzip")), max_body=4096
    )
    assert result.body == b"z" * 4096
    assert result.truncated
    whole = await send_capped(
        client, client.build_request("GET", sink.url("/big-gzip")), max_body=BIG_BODY_BYTES
    )
    assert len(whole.body) == BIG_BODY_BYTES
    assert not whole.truncated


async def test_the_deadline_bounds_the_whole_exchange(
    make_client: ClientFactory, sink: Sink
) -> None:
    client = make_client("127.0.0.0/8")
    request = client.build_request("GET", sink.url("/slow?s=2"))
    with pytest.raises(httpx.TimeoutException):
        await send_capped(client, request, deadline=0.05)


async def test_read_timeout_surfaces_as_an_httpx_timeout(
    make_client: ClientFactory, sink: Sink
) -> None:
    client = make_client("127.0.0.0/8")
    request = client.build_request(
        "GET", sink.url("/slow?s=2"), timeout=httpx.Timeout(5, read=0.05)
    )
    with pytest.raises(httpx.ReadTimeout) as raised:
        await client.send(request)
    assert raised.value.request is request


async def test_connection_refused_is_a_connect_error_not_a_timeout(
    make_client: ClientFactory, closed_port: int
) -> None:
    client = make_client("127.0.0.0/8")
    with pytest.raises(httpx.ConnectError) as raised:
        await client.get(f"http://127.0.0.1:{closed_port}/")
    assert not isinstance(raised.value, httpx.TimeoutException)


async def test_cookies_are_never_kept(make_client: ClientFactory, sink: Sink) -> None:
    client = make_client("127.0.0.0/8")
    await client.get(sink.url("/cookie"))
    await client.get(sink.url())
    assert len(client.cookies) == 0
    assert "Cookie" not in sink.received[1].headers


async def test_the_client_sends_its_user_agent(make_client: ClientFactory, sink: Sink) -> None:
    client = make_client("127.0.0.0/8", user_agent="ChronoFlow-Test/1")
    await client.get(sink.url())
    assert sink.received[0].headers["User-Agent"] == "ChronoFlow-Test/1"


async def test_a_remembered_refusal_is_refused_and_counted_every_time(
    make_client: ClientFactory, sink: Sink
) -> None:
    """The verdict on a URL is cached; the refusal, its metric and its silence are not."""
    registry = CollectorRegistry()
    client = make_client(metrics=EgressMetrics(registry))
    for _ in range(3):
        with pytest.raises(EgressBlocked) as raised:
            await send_capped(client, httpx.Request("POST", sink.url(host="[::ffff:7f00:1]")))
        assert raised.value.reason is BlockReason.LOOPBACK
    assert registry.get_sample_value("chronoflow_egress_blocked_total", {"reason": "loopback"}) == 3
    assert sink.received == []


async def test_send_capped_sends_with_the_clients_timeout_and_no_cookies(
    make_client: ClientFactory, sink: Sink
) -> None:
    """The direct path still applies the client's timeout and never stores a cookie."""
    client = make_client("127.0.0.0/8", timeout=httpx.Timeout(5, read=0.05))
    await send_capped(client, httpx.Request("GET", sink.url("/cookie")))
    again = await send_capped(client, httpx.Request("GET", sink.url()))
    assert again.status == 200
    assert "Cookie" not in sink.received[1].headers
    with pytest.raises(httpx.ReadTimeout):
        await send_capped(client, httpx.Request("GET", sink.url("/slow?s=2")))


async def test_send_capped_runs_hooks_set_on_the_client(
    make_client: ClientFactory, sink: Sink
) -> None:
    """Hooks added to the client (tracing, say) are not skipped by the direct path."""
    client = make_client("127.0.0.0/8")
    seen: list[str] = []

    async def on_request(request: httpx.Request) -> None:
        seen.append(request.url.path)

    client.event_hooks["request"] = [on_request]
    result = await send_capped(client, httpx.Request("POST", sink.url(), content=b"{}"))
    assert result.status == 200
    assert seen == ["/ok"]


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.ServerTimeoutError("slow"),
        aiohttp.SocketTimeoutError("no byte"),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientOSError(104, "reset"),
        aiohttp.ClientPayloadError("cut short"),
        aiohttp.InvalidUrlClientError("http://"),
        aiohttp.ClientConnectorError(
            aiohttp.client_reqrep.ConnectionKey("sink.test", 80, False, True, None, None, None),
            OSError(111, "refused"),
        ),
        aiohttp.ClientResponseError(None, (), status=400),  # type: ignore[arg-type]
        ValueError("a header aiohttp refuses"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_aiohttp_errors_become_what_httpx_aiohttp_makes_of_them(error: Exception) -> None:
    expected = _raised_by_the_reference(error)
    ours = _httpx_error(error)
    if expected is error:
        assert ours is None
    else:
        assert ours is not None
        assert (type(ours), str(ours)) == (type(expected), str(expected))


def _raised_by_the_reference(error: Exception) -> BaseException:
    def fail() -> None:
        raise error

    try:
        with map_aiohttp_exceptions():
            fail()
    except Exception as raised:
        return raised
    raise AssertionError("map_aiohttp_exceptions swallowed an error")
