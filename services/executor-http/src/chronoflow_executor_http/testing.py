"""Support for tests and benchmarks: a webhook sink on loopback and RunRequested factories.

Not used by the service itself. The sink listens on 127.0.0.1 only; each path can be given a
responder (a status sequence, a delay, a redirect, a huge body), and every request is kept with
its arrival time and ``webhook-id`` so duplicates and lateness can be counted.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from chronoflow_contracts.chrono import ChronoDefinition, ExecConfig, TargetType
from chronoflow_egress.signing import ID_HEADER
from chronoflow_platform.executor.testing import (
    one_off_definition,
    publish_run,
    retry_policy,
    run_request,
    until,
)

__all__ = [
    "Received",
    "WebhookSink",
    "http_definition",
    "huge",
    "ok",
    "publish_run",
    "redirect",
    "run_request",
    "slow",
    "statuses",
    "until",
]

Responder = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the sink saw it; ``at`` is the Unix time it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def webhook_id(self) -> str | None:
        """The Standard Webhooks id the request carried."""
        return self.headers.get(ID_HEADER)


async def ok(_: web.Request, __: int) -> web.StreamResponse:
    """The default answer: 200 with a short body."""
    return web.Response(text="ok")


def statuses(*codes: int, headers: dict[str, str] | None = None) -> Responder:
    """Answer the n-th request on the path with ``codes[n]`` (the last one from then on)."""

    async def respond(_: web.Request, nth: int) -> web.StreamResponse:
        code = codes[min(nth, len(codes) - 1)]
        extra = headers if code >= 400 else None
        return web.Response(status=code, text=f"status {code}", headers=extra)

    return respond


def slow(seconds: float, then: Responder = ok) -> Responder:
    """Wait before answering (a slow receiver, or one slower than the chrono's timeout)."""

    async def respond(request: web.Request, nth: int) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return await then(request, nth)

    return respond


def redirect(location: str, status: int = 302) -> Responder:
    """Redirect to ``location``."""

    async def respond(_: web.Request, __: int) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location})

    return respond


def huge(size: int, chunk: int = 64 * 1024) -> Responder:
    """Stream ``size`` bytes of body, stopping quietly if the client hangs up early."""

    async def respond(request: web.Request, _: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.content_length = size
        await response.prepare(request)
        block = b"x" * chunk
        sent = 0
        try:
            while sent < size:
                piece = block[: min(chunk, size - sent)]
                await response.write(piece)
                sent += len(piece)
        except (ConnectionResetError, ConnectionError):
            return response
        await response.write_eof()
        return response

    return respond


class WebhookSink:
    """An aiohttp server on 127.0.0.1 that records requests; start it, point chronos at it."""

    def __init__(self, default: Responder = ok) -> None:
        self.received: list[Received] = []
        self._default = default
        self._responders: dict[str, Responder] = {}
        self._counts: Counter[str] = Counter()
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def on(self, path: str, responder: Responder) -> str:
        """Answer requests on ``path`` with ``responder``; returns the path's full URL."""
        self._responders[path] = responder
        return self.url(path)

    def url(self, path: str = "/hook") -> str:
        """The URL of ``path`` on this sink."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self, port: int = 0) -> WebhookSink:
        """Listen on 127.0.0.1 (a free port unless one is given)."""
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, backlog=4096)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Close the listener and every connection."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> WebhookSink:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def on_path(self, path: str) -> list[Received]:
        """The requests that arrived on ``path``, in order."""
        return [r for r in self.received if r.path == path]

    def by_webhook_id(self) -> Counter[str]:
        """How many times each ``webhook-id`` arrived."""
        return Counter(r.webhook_id or "" for r in self.received)

    async def wait_for(self, count: int, *, path: str | None = None) -> None:
        """Until at least ``count`` requests (on ``path``, if given) have arrived.

        Wrap it in ``asyncio.timeout`` to bound the wait.
        """

        def enough() -> bool:
            seen = self.received if path is None else self.on_path(path)
            return len(seen) >= count

        async with self._arrived:
            await self._arrived.wait_for(enough)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        at = time.time()
        body = await request.read()
        path = request.path
        nth = self._counts[path]
        self._counts[path] += 1
        self.received.append(
            Received(
                method=request.method,
                path=path,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                at=at,
            )
        )
        async with self._arrived:
            self._arrived.notify_all()
        responder = self._responders.get(path, self._default)
        return await responder(request, nth)


def http_definition(
    url: str,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    payload: Any = None,
    attempts: int = 1,
    delay_ms: int = 100,
    backoff: str = "fixed",
    jitter: bool = False,
    timeout_ms: int | None = None,
    follow_redirects: bool = False,
) -> ChronoDefinition:
    """An HTTP chrono's definition, as the scheduler snapshots it into a RunRequested."""
    return one_off_definition(
        TargetType.HTTP,
        "webhook test",
        method=method,
        url=url,
        headers=headers or {},
        payload=payload,
        config=ExecConfig(
            timeout_ms=timeout_ms,
            retry=retry_policy(
                attempts=attempts, delay_ms=delay_ms, backoff=backoff, jitter=jitter
            ),
            follow_redirects=follow_redirects,
        ),
    )
