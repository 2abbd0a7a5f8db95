"""The HostBridge of a run: ``ctx.http`` through the egress-guarded client, ``ctx.message``
through the waha-gateway on the chrono's (or the function's) channel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from chronoflow_contracts.recipients import normalize_recipient
from chronoflow_egress import EgressBlocked, send_capped
from chronoflow_executor_function.gateway import WahaGateway
from chronoflow_executor_function.sandbox import (
    HostOpError,
    HttpRequest,
    HttpResponse,
    JsonValue,
)

#: ``channel id → WAHA session`` (None: no such channel).
SessionLookup = Callable[[str], Awaitable[str | None]]


class RunBridge:
    """Performs one run's outgoing operations; the sandbox only asks.

    ``channel_ids`` are the chrono's channel then the function's: the first one set is used.
    Its session is looked up on the first ``ctx.message.send`` and kept for the run.
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        gateway: WahaGateway,
        sessions: SessionLookup,
        channel_ids: tuple[str | None, ...],
    ) -> None:
        self._client = client
        self._gateway = gateway
        self._sessions = sessions
        self._channel_id = next((c for c in channel_ids if c), None)
        self._session: str | None = None

    async def http_request(self, request: HttpRequest) -> HttpResponse:
        """One request through the guarded client, redirects followed and re-checked."""
        try:
            outgoing = self._client.build_request(
                request.method, request.url, headers=dict(request.headers), content=request.body
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as exc:
            raise HostOpError(f"invalid request: {exc}") from None
        try:
            response = await send_capped(
                self._client,
                outgoing,
                max_body=request.max_response_bytes,
                follow_redirects=True,
                deadline=request.timeout_s,
            )
        except EgressBlocked as exc:
            # The message names the reason and the host asked for, never the resolved address.
            raise HostOpError(str(exc)) from None
        except httpx.TimeoutException:
            raise HostOpError(f"no complete response from {outgoing.url.host}") from None
        except httpx.TooManyRedirects as exc:
            raise HostOpError(str(exc)) from None
        except httpx.HTTPError as exc:
            raise HostOpError(f"connection error: {exc or type(exc).__name__}") from None
        return HttpResponse(
            status=response.status,
            headers=dict(response.headers.items()),
            body=response.body,
            truncated=response.truncated,
        )

    async def send_message(self, to: str, text: str) -> JsonValue:
        """One text to ``to`` (a phone number or chat id) on the run's channel."""
        chat_id = normalize_recipient(to)
        if chat_id is None:
            raise HostOpError(
                f"ctx.message.send: {to[:64]!r} is not a phone number or WhatsApp chat id "
                "(+5511999999999, 5511999999999@c.us or <id>@g.us)"
            )
        session = await self._resolve_session()
        return await self._gateway.send_text(session, chat_id, text)

    async def _resolve_session(self) -> str:
        if self._session is not None:
            return self._session
        if self._channel_id is None:
            raise HostOpError(
                "ctx.message.send: neither the chrono nor the function has a channel "
                "(set channelId on one of them)"
            )
        session = await self._sessions(self._channel_id)
        if session is None:
            raise HostOpError(f"ctx.message.send: channel {self._channel_id} does not exist")
        self._session = session
        return session
