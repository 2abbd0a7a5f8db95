"""The HTTP transport to WAHA: httpx's API over aiohttp's connection pool.

httpx's own transport costs several milliseconds of CPU per request under concurrency (its
pool scans every connection per request, and httpcore retries a failed ``import sniffio`` on
each one); over aiohttp a send costs a fraction of that, which is what lets one gateway keep up
with many executors when pacing is off.
"""

from __future__ import annotations

import asyncio

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

#: Connections kept to WAHA (one WAHA, many concurrent sends when pacing is off).
MAX_CONNECTIONS = 100


class WahaTransport(AiohttpTransport):
    """aiohttp underneath; errors reported as precisely as httpx's own transport does."""

    def __init__(self) -> None:
        # No environment proxies: WAHA's address is the configured one, nothing else.
        super().__init__(
            trust_env=False,
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS,
                max_keepalive_connections=MAX_CONNECTIONS,
                keepalive_expiry=30.0,
            ),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send through aiohttp; a refused connection is a ConnectError, not a timeout."""
        try:
            return await super().handle_async_request(request)
        except httpx.ConnectTimeout as exc:
            cause = exc.__cause__
            if isinstance(cause, aiohttp.ClientConnectorError) and not isinstance(
                cause, asyncio.TimeoutError
            ):
                raise httpx.ConnectError(str(exc), request=request) from cause
            raise
