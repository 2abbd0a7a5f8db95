"""One request through the guarded client: redirects re-checked hop by hop, the body capped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import cast

import httpx

from chronoflow_egress.client import GuardedClient, GuardedResponseStream, default_port

MAX_BODY_BYTES = 1024 * 1024
# Dropped from a redirected request whenever the next hop is another origin.
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_BODY_HEADERS = ("content-length", "content-type", "transfer-encoding")


@dataclass(frozen=True, slots=True)
class CappedResponse:
    """A response whose body was read up to a cap; ``truncated`` says whether more was left."""

    status: int
    headers: httpx.Headers
    body: bytes
    truncated: bool
    duration_s: float
    url: httpx.URL
    redirects: int = 0

    def snippet(self, chars: int = 1000) -> str:
        """The start of the body as text (UTF-8, undecodable bytes replaced)."""
        return self.body[: chars * 4].decode("utf-8", errors="replace")[:chars]


async def read_capped(
    response: httpx.Response, max_bytes: int = MAX_BODY_BYTES
) -> tuple[bytes, bool]:
    """Read a streamed (decoded) body up to ``max_bytes``; stop there without draining the rest."""
    raw = response.stream
    if isinstance(raw, GuardedResponseStream) and raw.plain:
        # Nothing to decode: read aiohttp's buffer directly rather than chunk by chunk
        # through httpx's decoders.
        try:
            return await raw.read_capped(max_bytes)
        except httpx.TransportError as exc:
            exc.request = response.request
            raise
    chunks: list[bytes] = []
    size = 0
    # aiter_bytes is an async generator (typed as a plain iterator); close it when we stop early.
    body_chunks = cast("AsyncGenerator[bytes, None]", response.aiter_bytes())
    async with aclosing(body_chunks) as stream:
        async for chunk in stream:
            room = max_bytes - size
            if len(chunk) > room:
                chunks.append(chunk[:room])
                return b"".join(chunks), True
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks), False


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, default_port(a)) == (b.scheme, b.host, default_port(b))


def redirect_request(
    request: httpx.Request, response: httpx.Response, sensitive_headers: Iterable[str] = ()
) -> httpx.Request:
    """The next hop's request, as browsers and httpx build it, minus credentials across origins.

    The hop goes through the same client, so its scheme, host and every resolved address are
    checked again before anything is sent.
    """
    try:
        url = request.url.join(response.headers["location"])
    except httpx.InvalidURL as exc:
        raise httpx.RemoteProtocolError("invalid redirect location", request=request) from exc
    method = request.method
    if (response.status_code == 303 and method != "HEAD") or (
        response.status_code in (301, 302) and method == "POST"
    ):
        method = "GET"
    headers = httpx.Headers(request.headers)
    headers.pop("host", None)
    if not _same_origin(url, request.url):
        for name in SENSITIVE_HEADERS.union(h.lower() for h in sensitive_headers):
            headers.pop(name, None)
    content: bytes | None = request.content
    if method != request.method:
        content = None
        for name in _BODY_HEADERS:
            headers.pop(name, None)
    return httpx.Request(
        method, url, headers=headers, content=content, extensions=request.extensions
    )


async def send_capped(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    max_body: int = MAX_BODY_BYTES,
    follow_redirects: bool = False,
    sensitive_headers: Iterable[str] = (),
    deadline: float | None = None,
) -> CappedResponse:
    """Send one request, read at most ``max_body`` bytes of the response, and time it.

    With ``follow_redirects`` each hop is re-checked by the guard, at most ``client.max_redirects``
    hops, and ``sensitive_headers`` (beyond Authorization, Cookie, Proxy-Authorization) are
    dropped when a hop changes origin. ``deadline`` bounds the whole exchange in seconds,
    whatever the per-phase timeouts allow (a server dripping one byte at a time cannot hold it).

    Raises :class:`EgressBlocked` for a refused destination, ``httpx.TooManyRedirects``, and
    ``httpx`` transport errors (``httpx.TimeoutException`` when the deadline passes).
    """
    scope = asyncio.timeout(deadline)
    try:
        async with scope:
            return await _exchange(
                client, request, max_body, follow_redirects, tuple(sensitive_headers)
            )
    except TimeoutError as exc:
        if not scope.expired():
            raise
        raise httpx.TimeoutException(
            f"no complete response within {deadline} s", request=request
        ) from exc


async def _exchange(
    client: httpx.AsyncClient,
    request: httpx.Request,
    max_body: int,
    follow_redirects: bool,
    sensitive_headers: tuple[str, ...],
) -> CappedResponse:
    started = time.perf_counter()
    hops = 0
    while True:
        if isinstance(client, GuardedClient):
            response = await client.send_guarded(request)
        else:
            response = await client.send(request, stream=True, follow_redirects=False)
        try:
            if not (follow_redirects and response.has_redirect_location):
                body, truncated = await read_capped(response, max_body)
                return CappedResponse(
                    status=response.status_code,
                    headers=response.headers,
                    body=body,
                    truncated=truncated,
                    duration_s=time.perf_counter() - started,
                    url=request.url,
                    redirects=hops,
                )
            if hops >= client.max_redirects:
                raise httpx.TooManyRedirects(
                    f"more than {client.max_redirects} redirects", request=request
                )
            request = redirect_request(request, response, sensitive_headers)
            hops += 1
        finally:
            await response.aclose()
