"""The guarded httpx client: aiohttp underneath for throughput, the egress policy at its seams."""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Final, NamedTuple

import aiohttp
import httpx
import yarl
from aiohttp.abc import AbstractResolver
from httpx_aiohttp.transport import AIOHTTP_EXC_MAP, AiohttpResponseStream
from multidict import CIMultiDict

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
_HTTP_1_1: Final = {"http_version": b"HTTP/1.1"}


class _Target(NamedTuple):
    """What the transport knows of one URL: the guard's verdict on it, and aiohttp's parse."""

    refusal: _Refusal
    url: yarl.URL | None


def default_port(url: httpx.URL) -> int:
    """The URL's port, or the scheme's default."""
    if url.port is not None:
        return url.port
    return 443 if url.scheme == "https" else 80


class GuardedResponseStream(AiohttpResponseStream):
    """An aiohttp response body as httpx streams it, plus a direct capped read.

    :func:`chronoflow_egress.read_capped` uses :meth:`read_capped` for a body without a
    content coding: it reads aiohttp's buffer as it is, where httpx's byte stream would pass
    every chunk through its decoders and chunkers first.
    """

    async def read_capped(self, max_bytes: int) -> tuple[bytes, bool]:
        """The raw body up to ``max_bytes``, and whether more was left unread."""
        content = self._aiohttp_response.content
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                # One byte more than there is room for tells a truncated body from a full one.
                chunk = await content.read(max_bytes - size + 1)
                if not chunk:
                    return b"".join(chunks), False
                size += len(chunk)
                if size > max_bytes:
                    chunks.append(chunk[: len(chunk) - (size - max_bytes)])
                    return b"".join(chunks), True
                chunks.append(chunk)
                if content.at_eof():
                    # The whole body is in (a small webhook answer usually comes in one
                    # piece): no need for another read to be told so.
                    return b"".join(chunks), False
        except Exception as exc:
            mapped = _httpx_error(exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        # What AiohttpResponseStream.aclose does, with its errors mapped where they are caught
        # instead of through a generator-based context manager on every response.
        try:
            await self._aiohttp_response.__aexit__(None, None, None)
        except Exception as exc:
            mapped = _httpx_error(exc)
            if mapped is None:
                raise
            raise mapped from exc

    @property
    def plain(self) -> bool:
        """Whether the body comes without a content coding (nothing for httpx to decode)."""
        return "content-encoding" not in self._aiohttp_response.headers


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport over aiohttp that only connects where the egress policy allows.

    Host names are checked by :class:`GuardedResolver`, inside aiohttp's connector, so the
    connection goes to the address that was checked. aiohttp skips the resolver for IP-literal
    hosts, so those are checked here, on the host exactly as aiohttp will parse it.

    Requests go straight to an ``aiohttp.ClientSession``: a webhook URL is parsed by yarl once
    (with its verdict), one ``ClientTimeout`` serves every request with the same timeouts, and
    the headers are handed over as the ``CIMultiDict`` aiohttp works with. (httpx-aiohttp's
    ``AiohttpTransport`` rebuilt all three on every request; only its response stream and its
    exception mapping are kept.)
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
        self._target = functools.lru_cache(maxsize=URL_VERDICT_CACHE)(self._judge_url)
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        # Built on first use: aiohttp wants a running event loop.
        self._session: aiohttp.ClientSession | None = None

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
        # Bodies are left encoded: httpx decodes them, as it does for its own transports.
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            auto_decompress=False,
        )

    def _checked(self, url: httpx.URL) -> yarl.URL:
        """aiohttp's parse of ``url``, once the guard has let it through: a bad scheme or a
        refused IP-literal host raises :class:`EgressBlocked`; host names are left to the
        resolver."""
        # Keyed by the URL's text: httpx.Request copies its URL, and a copy is looked up by
        # URL.__eq__, which parses the other side again (~3 us per request).
        target = self._target(str(url))
        if target.refusal is not None:
            reason, host, port, address = target.refusal
            raise EgressBlocked(reason, host=host, port=port, address=address)
        assert target.url is not None  # only a refusal comes without one
        return target.url

    def _judge_url(self, text: str) -> _Target:
        # Pure in the URL's text (httpx URLs hash and compare as their text) and the immutable
        # policy, so each webhook URL is judged once, not on every run. Host names still go to
        # the resolver on every connection: caching here never skips a DNS answer's check.
        url = httpx.URL(text)
        port = default_port(url)
        if url.scheme not in ALLOWED_SCHEMES:
            return _Target((BlockReason.SCHEME, url.host, port, None), None)
        parsed = yarl.URL(text)
        # httpx's reading of the host and aiohttp's (yarl's) can differ; check both.
        for host in {url.host, parsed.raw_host or ""}:
            address = literal_address(host)
            if address is None:
                if looks_like_literal(host):
                    return _Target((BlockReason.INVALID_HOST, host, port, None), None)
                continue
            decision = check_address(address, port, self.policy, host=host)
            if decision.reason is not None:
                return _Target((decision.reason, host, port, address), None)
        return _Target(None, parsed)

    def _timeout(self, timeout: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
        key = (timeout.get("connect"), timeout.get("read"), timeout.get("pool"))
        found = self._timeouts.get(key)
        if found is None:
            # The mapping httpx-aiohttp uses: httpx's pool wait is aiohttp's connect (which
            # includes waiting for a free connection), httpx's connect is the socket connect.
            found = self._timeouts[key] = aiohttp.ClientTimeout(
                sock_connect=key[0], sock_read=key[1], connect=key[2]
            )
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            url = self._checked(request.url)
            return await self._send(request, url)
        except EgressBlocked as exc:
            # Counted here, once per refused request: concurrent requests for one name share a
            # single resolution inside aiohttp, so the resolver would count them once.
            if self._metrics is not None:
                self._metrics.record_blocked(exc.reason)
            raise
        except httpx.TransportError as exc:
            raise _with_request(_precise(exc), request) from exc.__cause__

    async def _send(self, request: httpx.Request, url: yarl.URL) -> httpx.Response:
        if self._session is None:
            self._session = self._new_session()
        data: bytes | httpx.AsyncByteStream | None
        # The names as httpx keeps them lowercased, decoded with the headers' encoding (worked
        # out once and remembered; domain.build_request sets it).
        headers = CIMultiDict(request.headers.multi_items())
        try:
            data = request.content or None
        except httpx.RequestNotRead:
            # A streamed body: aiohttp chunks it itself.
            data = request.stream  # type: ignore[assignment]
            headers.popall("transfer-encoding", None)
        try:
            response = await self._session.request(
                request.method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                compress=False,
                timeout=self._timeout(request.extensions.get("timeout", {})),
                server_hostname=request.extensions.get("sni_hostname"),
            )
        except Exception as exc:
            mapped = _httpx_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        extensions = _HTTP_1_1
        if response.reason:
            extensions = {**_HTTP_1_1, "reason_phrase": response.reason.encode()}
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=GuardedResponseStream(response),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
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
        if "timeout" not in request.extensions:
            request.extensions["timeout"] = self.timeout.as_dict()
        return await self.guard.handle_async_request(request)


def _httpx_error(exc: Exception) -> Exception | None:
    """What httpx-aiohttp's ``map_aiohttp_exceptions`` raises instead of ``exc``: the httpx
    error its map gives (the most specific when several match), or None to let ``exc`` through.

    Applied where the exception is caught, so a request that succeeds pays nothing: the
    generator-based context manager cost ~1 us on every request and every body read.
    """
    mapped: type[Exception] | None = None
    for aiohttp_error, httpx_error in AIOHTTP_EXC_MAP.items():
        if isinstance(exc, aiohttp_error) and (mapped is None or issubclass(httpx_error, mapped)):
            mapped = httpx_error
    return None if mapped is None else mapped(str(exc))


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
