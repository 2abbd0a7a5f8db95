"""The guarded httpx client: aiohttp underneath for throughput, the egress policy at its seams."""

from __future__ import annotations

import asyncio
import functools
import ssl
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Final

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
DEFAULT_USER_AGENT = "ChronoFlow-Webhooks/0.1"
#: Distinct URLs whose literal-host verdict is remembered (one per webhook URL in use).
URL_VERDICT_CACHE = 4096
#: A refusal, as (reason, host, port, address), or None when the URL may proceed.
_Refusal = tuple[BlockReason, str, int, IPAddress | None] | None


def default_port(url: httpx.URL) -> int:
    """The URL's port, or the scheme's default."""
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
        self.policy: Final = policy
        self._metrics = metrics
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._dns_cache_ttl = dns_cache_ttl
        self._ssl = (
            verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
        )
        self._resolver = GuardedResolver(policy, inner=resolver)
        self._url_verdict = functools.lru_cache(maxsize=URL_VERDICT_CACHE)(self._judge_url)
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

    def check_request(self, request: httpx.Request) -> None:
        """Refuse a bad scheme or a refused IP-literal host; host names are left to the resolver."""
        refusal = self._url_verdict(request.url)
        if refusal is not None:
            reason, host, port, address = refusal
            raise EgressBlocked(reason, host=host, port=port, address=address)

    def _judge_url(self, url: httpx.URL) -> _Refusal:
        # Pure in the URL (httpx URLs hash and compare as their text) and the immutable
        # policy, so each webhook URL is judged once, not on every run. Host names still go to
        # the resolver on every connection: caching here never skips a DNS answer's check.
        port = default_port(url)
        if url.scheme not in ALLOWED_SCHEMES:
            return (BlockReason.SCHEME, url.host, port, None)
        # httpx's reading of the host and aiohttp's (yarl's) can differ; check both.
        for host in {url.host, yarl.URL(str(url)).raw_host or ""}:
            address = literal_address(host)
            if address is None:
                if looks_like_literal(host):
                    return (BlockReason.INVALID_HOST, host, port, None)
                continue
            decision = check_address(address, port, self.policy, host=host)
            if decision.reason is not None:
                return (decision.reason, host, port, address)
        return None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            self.check_request(request)
            return await self._aiohttp.handle_async_request(request)
        except EgressBlocked as exc:
            # Counted here, once per refused request: concurrent requests for one name share a
            # single resolution inside aiohttp, so the resolver would count them once.
            if self._metrics is not None:
                self._metrics.record_blocked(exc.reason)
            raise
        except httpx.TransportError as exc:
            raise _with_request(_precise(exc), request) from exc.__cause__

    async def aclose(self) -> None:
        await self._aiohttp.aclose()
        await self._resolver.close()


class GuardedClient(httpx.AsyncClient):
    """The executors' client: an ``httpx.AsyncClient`` over :class:`GuardedTransport`.

    :meth:`send_guarded` is what :func:`chronoflow_egress.send_capped` uses: the request goes
    straight to the guarded transport, past the client's auth, cookie, event-hook and
    mount layers, which cost about a fifth of the request's CPU and do nothing for this client
    (no auth, a cookie jar that refuses everything, no hooks, no proxies). Should hooks or auth be
    set on it anyway, it takes the full path so they still apply.
    """

    def __init__(self, transport: GuardedTransport, **kwargs: Any) -> None:
        super().__init__(transport=transport, **kwargs)
        self.guard = transport

    async def send_guarded(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` without following redirects; the body is left to stream."""
        hooks = self.event_hooks
        if self.auth is not None or hooks["request"] or hooks["response"]:
            return await self.send(request, stream=True, follow_redirects=False)
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        request.extensions.setdefault("timeout", self.timeout.as_dict())
        return await self.guard.handle_async_request(request)


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
) -> GuardedClient:
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
    return GuardedClient(
        transport,
        timeout=timeout,
        follow_redirects=False,
        max_redirects=policy.max_redirects,
        trust_env=False,
        cookies=_refuse_all_cookies(),
        headers={"user-agent": user_agent},
    )
