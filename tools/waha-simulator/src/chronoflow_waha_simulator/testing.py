"""Helpers for tests that use the simulator: fast settings, a webhook sink, polling.

Start a simulator with ``run_simulator(fast_settings(...))`` (see ``server``); point its webhooks
at a ``WebhookSink`` served with ``run_webhook_sink()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from pydantic import SecretStr

from chronoflow_waha_simulator.server import serve_app
from chronoflow_waha_simulator.settings import SimulatorSettings


def fast_settings(**overrides: Any) -> SimulatorSettings:
    """Settings for tests: a free loopback port, short STARTING, no waiting for a status.

    Any field can be overridden by name (``api_key="k"``, ``hook_urls=[...]``, ...).
    """
    values: dict[str, Any] = {
        "http_host": "127.0.0.1",
        "http_port": 0,
        "starting_seconds": 0.01,
        "status_wait_seconds": 0.0,
        "hook_retries_delay_seconds": 0.01,
        "hook_timeout_seconds": 5.0,
    }
    values.update(overrides)
    for secret in ("api_key", "hook_hmac_key"):
        if isinstance(values.get(secret), str):
            values[secret] = SecretStr(values[secret])
    return SimulatorSettings.model_validate(values)


@dataclass(frozen=True)
class Hook:
    """One webhook POST received: headers (lower-case names) and the raw body."""

    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookSink:
    """Receives webhooks at ``url``; ``fail_next`` makes it answer 503 that many times first."""

    url: str = ""
    received: list[Hook] = field(default_factory=list)
    fail_next: int = 0

    def app(self) -> FastAPI:
        """The receiving ASGI app (``POST /hook``)."""
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            if self.fail_next > 0:
                self.fail_next -= 1
                return Response(status_code=503)
            self.received.append(Hook(dict(request.headers), await request.body()))
            return Response(status_code=200)

        return app


@contextlib.asynccontextmanager
async def run_webhook_sink() -> AsyncIterator[WebhookSink]:
    """A ``WebhookSink`` serving on a free loopback port."""
    sink = WebhookSink()
    async with serve_app(sink.app()) as base_url:
        sink.url = f"{base_url}/hook"
        yield sink


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], *, within: float = 5.0
) -> None:
    """Poll ``check`` until it holds; ``TimeoutError`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        outcome = check()
        if isinstance(outcome, Awaitable):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {within} s")
        await asyncio.sleep(0.01)
