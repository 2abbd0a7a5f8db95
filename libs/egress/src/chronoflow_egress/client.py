"""The guarded httpx client: aiohttp underneath for throughput, the egress policy at its seams."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import cast

import aiohttp
import httpx
import yarl
from aiohttp.abc import AbstractResolver
from httpx_aiohttp import AiohttpTransport

from chronoflow_egress.decision import (
    BlockReason,
    EgressBlocked,
    check_address,
    literal_address,
    looks_like_literal,
)
from chronoflow_egress.metrics import EgressMetrics
from chronoflow_egress.policy import EgressPolicy, IPAddress
from chronoflow_egress.resolver import GuardedResolver

ALLOWED_SCHEMES = frozenset({"http", "https"})
MAX_BODY_BYTES = 1024 * 1024
DEFAULT_USER_AGENT = "ChronoFlow-Webhooks/0.1"
# Dropped from a redirected request whenever the next hop is another origin.
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_BODY_HEADERS = ("content-length", "content-type", "transfer-encoding")


def _default_port(url: httpx.URL) -> int:
    if url.port is not None:
        return url.port
    return 443 if url.scheme == "https" else 80


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport over aiohttp that only connects where the egress policy allows.

    Host names are checked by :class:`GuardedResolver`, inside aiohttp's connector, so the
    connection goes to the address that was checked. aiohttp skips the resolver for IP-literal
    hosts, so those are checked here, on the host exactly as aiohttp will parse it.
    """

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        max_connections: int = 100,
        keepalive_expiry: float = 30.0,
        verify: ssl.SSLContext | bool = True,
        resolver: AbstractResolver | None = None,
        metrics: EgressMetrics | None = None,
        dns_cache_ttl: int = 10,
    ) -> None:
        self.policy = policy
        self._metrics = metrics
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._dns_cache_ttl = dns_cache_ttl
        self._ssl = (
            verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
        )
        self._resolver = GuardedResolver(policy, inner=resolver, on_blocked=self._record)
        # The session is built on first use: aiohttp wants a running event loop.
        self._aiohttp = AiohttpTransport(verify=self._ssl, client=self._new_session)

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            resolver=self._resolver,
            ssl=self._ssl,
            limit=self._max_connections,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_expiry,
            ttl_dns_cache=self._dns_cache_ttl,
        )
        # No cookie jar and no environment proxies: a proxy would resolve the name itself,
        # past the guard, and cookies must not travel between different users' webhooks.
        return aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
        )

    def _record(self, reason: BlockReason) -> None:
        if self._metrics is not None:
            self._metrics.record_blocked(reason)

    def _refuse(self, reason: BlockReason, host: str, port: int, address: IPAddress | None) -> None:
        self._record(reason)
        raise EgressBlocked(reason, host=host, port=port, address=address)

    def check_request(self, request: httpx.Request) -> None:
        """Refuse a bad scheme or a refused IP-literal host; host names are left to the resolver."""
        url = request.url
        port = _default_port(url)
        if url.scheme not in ALLOWED_SCHEMES:
            self._refuse(BlockReason.SCHEME, url.host, port, None)
        # httpx's reading of the host and aiohttp's (yarl's) can differ; check both.
        for host in {url.host, yarl.URL(str(url)).raw_host or ""}:
            address = literal_address(host)
            if address is None:
                if looks_like_literal(host):
                    self._refuse(BlockReason.INVALID_HOST, host, port, None)
                continue
            decision = check_address(address, port, self.policy, host=host)
            if decision.reason is not None:
                self._refuse(decision.reason, host, port, address)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.check_request(request)
        try:
            return await self._aiohttp.handle_async_request(request)
        except httpx.TransportError as exc:
            raise _with_request(_precise(exc), request) from exc.__cause__

    async def aclose(self) -> None:
        await self._aiohttp.aclose()
        await self._resolver.close()


def _precise(exc: httpx.TransportError) -> httpx.TransportError:
    """Undo httpx-aiohttp's coarse mapping, which reports a refused connection as a timeout."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(str(exc))
    if (
        isinstance(exc, httpx.ConnectTimeout)
        and isinstance(cause, aiohttp.ClientConnectorError)
        and not isinstance(cause, asyncio.TimeoutError)
    ):
        return httpx.ConnectError(str(exc))
    return exc


def _with_request(exc: httpx.TransportError, request: httpx.Request) -> httpx.TransportError:
    try:
        exc.request  # noqa: B018 - raises RuntimeError when no request is attached
    except RuntimeError:
        exc.request = request
    return exc


def _refuse_all_cookies() -> CookieJar:
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def build_client(
    policy: EgressPolicy,
    *,
    timeout: float | httpx.Timeout = 10.0,
    max_connections: int = 100,
    keepalive_expiry: float = 30.0,
    verify: ssl.SSLContext | bool = True,
    user_agent: str = DEFAULT_USER_AGENT,
    metrics: EgressMetrics | None = None,
    resolver: AbstractResolver | None = None,
) -> httpx.AsyncClient:
    """The one pooled client an executor uses; create it in the app's lifespan and close it there.

    Redirects are not followed (see :func:`send_capped` to opt in); cookies are never stored;
    proxies and ``.netrc`` from the environment are ignored. ``resolver`` replaces the system
    resolver underneath the guard (tests use a fake one).
    """
    transport = GuardedTransport(
        policy,
        max_connections=max_connections,
        keepalive_expiry=keepalive_expiry,
        verify=verify,
        resolver=resolver,
        metrics=metrics,
    )
    return httpx.AsyncClient(
        transport=transport,
        timeout=timeout,
        follow_redirects=False,
        max_redirects=policy.max_redirects,
        trust_env=False,
        cookies=_refuse_all_cookies(),
        headers={"user-agent": user_agent},
    )


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
    return (a.scheme, a.host, _default_port(a)) == (b.scheme, b.host, _default_port(b))


def redirect_request(
    request: httpx.Request, response: httpx.Response, sensitive_headers: Iterable[str] = ()
) -> httpx.Request:
    """The next hop's request, as browsers and httpx build it, minus credentials across origins.

    The hop goes through the same client, so its scheme, host and every resolved address are
    checked again before anything is sent.
    """
    url = request.url.join(response.headers["location"])
    if url.scheme not in ALLOWED_SCHEMES:
        raise EgressBlocked(BlockReason.SCHEME, host=url.host, port=_default_port(url))
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
