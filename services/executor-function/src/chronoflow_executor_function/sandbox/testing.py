"""Test doubles for the sandbox: a local HTTP app, a bridge over aiohttp, a harness.

Used by the sandbox tests and ``bench/bench_function_sandbox.py``; needs the dev dependency
``aiohttp``, and production code never imports it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from chronoflow_executor_function.sandbox.bridge import HostOpError, HttpRequest, HttpResponse
from chronoflow_executor_function.sandbox.model import (
    ChronoInfo,
    FunctionInput,
    FunctionResult,
    JsonValue,
    Limits,
)
from chronoflow_executor_function.sandbox.pool import SandboxPool

USERS = [
    {"name": "Ana", "phone": "+5511999999999"},
    {"name": "Bruno", "phone": "+5511888888888"},
    {"name": "Carla", "phone": "+5511777777777"},
]


@dataclass
class LocalServer:
    """The aiohttp app the functions call, and what it received."""

    base: str
    requests: list[dict[str, Any]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path


async def _record(request: web.Request, server: LocalServer) -> dict[str, Any]:
    entry = {
        "method": request.method,
        "path": request.path,
        "query": dict(request.query),
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "body": (await request.read()).decode("utf-8", "replace"),
    }
    server.requests.append(entry)
    return entry


def _app(server: LocalServer) -> web.Application:
    async def users(request: web.Request) -> web.Response:
        await _record(request, server)
        return web.json_response(USERS)

    async def echo(request: web.Request) -> web.Response:
        entry = await _record(request, server)
        return web.json_response(entry, status=int(request.query.get("status", "200")))

    async def text(request: web.Request) -> web.Response:
        await _record(request, server)
        return web.Response(text="plain text, not JSON", headers={"X-Custom": "yes"})

    async def big(request: web.Request) -> web.Response:
        await _record(request, server)
        return web.Response(body=b"x" * (3 * 1024 * 1024))

    async def slow(request: web.Request) -> web.Response:
        await _record(request, server)
        await asyncio.sleep(5)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/users", users)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/text", text)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    return app


async def start_local_server() -> tuple[LocalServer, web.AppRunner]:
    """Serve the test app on 127.0.0.1 and a free port; clean up the runner when done."""
    server = LocalServer(base="")
    runner = web.AppRunner(_app(server), shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.base = f"http://{host}:{port}"
    return server, runner


class LocalBridge:
    """A HostBridge over aiohttp whose policy admits only the local test server.

    It stands in for the executor's SSRF-guarded client: the policy is applied here, on the
    host, whatever the function asks for.
    """

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.allowed = urlsplit(base).netloc
        self.messages: list[tuple[str, str]] = []
        self.message_sent = asyncio.Event()

    async def http_request(self, request: HttpRequest) -> HttpResponse:
        if urlsplit(request.url).netloc != self.allowed:
            raise HostOpError(f"egress denied: {urlsplit(request.url).hostname} is not allowed")
        async with self.session.request(
            request.method,
            request.url,
            headers=dict(request.headers),
            data=request.body,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=request.timeout_s),
        ) as response:
            body = await response.content.read(request.max_response_bytes + 1)
            return HttpResponse(
                status=response.status,
                headers=dict(response.headers),
                body=body[: request.max_response_bytes],
                truncated=len(body) > request.max_response_bytes,
            )

    async def send_message(self, to: str, text: str) -> JsonValue:
        self.messages.append((to, text))
        self.message_sent.set()
        return {"id": f"msg-{len(self.messages)}", "to": to}


def function_input(
    *,
    state: dict[str, JsonValue] | None = None,
    extras: dict[str, JsonValue] | None = None,
    env: dict[str, str] | None = None,
) -> FunctionInput:
    return FunctionInput(
        chrono=ChronoInfo(
            id="chrono-1",
            name="Cobrança atrasados",
            scheduled_for=datetime(2026, 3, 1, 7, 30, tzinfo=UTC),
            attempt=2,
        ),
        extras=extras or {},
        state=state or {},
        env=env or {},
    )


@dataclass
class Harness:
    """What a sandbox test needs: the pool, the local server, a recording bridge."""

    pool: SandboxPool
    server: LocalServer
    bridge: LocalBridge

    @staticmethod
    def module(body: str) -> str:
        """``body`` as the inside of ``export default async function run(ctx)``."""
        return f"export default async function run(ctx) {{\n{body}\n}}\n"

    @staticmethod
    def input(
        *,
        state: dict[str, JsonValue] | None = None,
        extras: dict[str, JsonValue] | None = None,
        env: dict[str, str] | None = None,
    ) -> FunctionInput:
        return function_input(state=state, extras=extras, env=env)

    async def run(
        self,
        body: str | None = None,
        *,
        code: str | None = None,
        limits: Limits | None = None,
        ctx_input: FunctionInput | None = None,
        pool: SandboxPool | None = None,
    ) -> FunctionResult:
        """Run ``code``, or ``body`` wrapped in ``run(ctx)``; ``@BASE@`` in it is the server URL."""
        source = code if code is not None else self.module(body or "")
        return await (pool or self.pool).run_function(
            source.replace("@BASE@", self.server.base),
            ctx_input or function_input(),
            self.bridge,
            limits or Limits(timeout_ms=5000),
        )


def dump(result: FunctionResult) -> str:
    """The result as JSON, for assertion messages."""
    return json.dumps(result.to_json(), indent=1)[:3000]
