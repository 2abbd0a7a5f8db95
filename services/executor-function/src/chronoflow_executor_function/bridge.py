"""The HostBridge of a run: ``ctx.http`` through the egress-guarded client, ``ctx.message``
through the waha-gateway on the chrono's (or the function's) channel."""

from __future__ import annotations

import asyncio
import hashlib

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


class RunBridge:
    """Performs one run's outgoing operations; the sandbox only asks.

    ``channel_ids`` are the chrono's channel then the function's: the first one set is used
    (the gateway resolves its WAHA session). ``occurrence_id``, for scheduled runs, keys each
    text with the gateway so that a run executed again (a redelivery, a retry after a crash)
    does not send the same text twice; tests pass None. ``deadline`` (event-loop time) is when
    the run ends at the latest.
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        gateway: WahaGateway,
        channel_ids: tuple[str | None, ...],
        occurrence_id: str | None,
        deadline: float,
    ) -> None:
        self._client = client
        self._gateway = gateway
        self._channel_id = next((c for c in channel_ids if c), None)
        self._occurrence_id = occurrence_id
        self._deadline = deadline
        self._sends = 0

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
        # Numbered before any await: calls start in the order JavaScript made them.
        self._sends += 1
        chat_id = normalize_recipient(to)
        if chat_id is None:
            raise HostOpError(
                f"ctx.message.send: {to[:64]!r} is not a phone number or WhatsApp chat id "
                "(+5511999999999, 5511999999999@c.us or <id>@g.us)"
            )
        if self._channel_id is None:
            raise HostOpError(
                "ctx.message.send: neither the chrono nor the function has a channel "
                "(set channelId on one of them)"
            )
        return await self._gateway.send_text(
            self._channel_id,
            chat_id,
            text,
            idempotency_key=self._key(self._sends, chat_id, text),
            deadline=self._deadline,
        )

    def _key(self, seq: int, chat_id: str, text: str) -> str | None:
        """The n-th text of this occurrence, to this chat, with this content."""
        if self._occurrence_id is None:
            return None
        digest = hashlib.sha256(f"{chat_id}\0{text}".encode()).hexdigest()[:24]
        return f"fn:{self._occurrence_id}:{seq}:{digest}"


def run_deadline(timeout_ms: int) -> float:
    """The event-loop time a run starting now ends at the latest."""
    return asyncio.get_running_loop().time() + timeout_ms / 1000
