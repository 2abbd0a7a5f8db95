"""``ctx.message.send`` on the wire: a NATS request to the waha-gateway, which owns the sessions.

Request and reply are the shared contract (``chronoflow_contracts.waha``): a
``WahaSendRequest`` naming the channel (the gateway resolves its session), the chat id and the
text, with an idempotency key for scheduled runs; a ``WahaSendReply``. A refusal the gateway
marks retryable (its pacing, WhatsApp's rate limit, a session still starting) is asked again
after ``retryAfter`` while the run has time for it; any other refusal rejects the call with
the gateway's words.
"""

from __future__ import annotations

import asyncio

import nats.errors
from nats.aio.client import Client as NatsClient
from pydantic import ValidationError

from chronoflow_contracts import names
from chronoflow_contracts.waha import WahaSendReply, WahaSendRequest
from chronoflow_executor_function.sandbox import HostOpError, JsonValue
from chronoflow_platform.telemetry import inject

_PREFIX = "ctx.message.send: "
#: A retryable refusal without ``retryAfter`` is asked again after this long.
DEFAULT_RETRY_AFTER_S = 1.0


class WahaGateway:
    """Sends one text through the waha-gateway and turns its refusals into HostOpErrors."""

    def __init__(self, nc: NatsClient, *, timeout_s: float) -> None:
        self._nc = nc
        self._timeout_s = timeout_s

    async def send_text(
        self,
        channel_id: str,
        chat_id: str,
        text: str,
        *,
        idempotency_key: str | None,
        deadline: float,
    ) -> JsonValue:
        """Send ``text`` to ``chat_id`` on ``channel_id``'s session; what JavaScript gets back.

        ``deadline`` (event-loop time) is when the run ends: a retry that would wait past it
        is not attempted.
        """
        request = WahaSendRequest(
            channel_id=channel_id, chat_id=chat_id, text=text, idempotency_key=idempotency_key
        )
        body = request.model_dump_json(by_alias=True, exclude_none=True).encode()
        loop = asyncio.get_running_loop()
        while True:
            reply = await self._ask(body)
            if reply.ok:
                return {
                    "messageId": reply.message_id,
                    "chatId": reply.chat_id,
                    "session": reply.session,
                    "deduplicated": reply.deduplicated,
                }
            wait = reply.retry_after if reply.retry_after is not None else DEFAULT_RETRY_AFTER_S
            if not reply.retryable or loop.time() + wait >= deadline:
                raise HostOpError(_PREFIX + _describe(reply))
            await asyncio.sleep(wait)

    async def _ask(self, body: bytes) -> WahaSendReply:
        try:
            msg = await self._nc.request(
                names.WAHA_SEND_SUBJECT, body, timeout=self._timeout_s, headers=inject({})
            )
        except nats.errors.NoRespondersError:
            raise HostOpError(_PREFIX + "the waha-gateway is not running") from None
        except TimeoutError:
            raise HostOpError(
                f"{_PREFIX}the waha-gateway did not answer within {self._timeout_s:g} s"
            ) from None
        try:
            return WahaSendReply.model_validate_json(msg.data)
        except ValidationError:
            raise HostOpError(_PREFIX + "the waha-gateway answered something unexpected") from None


def _describe(reply: WahaSendReply) -> str:
    """The gateway's reason, with its code (and how long to wait, when it said)."""
    text = reply.error or "the waha-gateway did not send the message"
    details = [reply.code.value] if reply.code is not None else []
    if reply.retry_after is not None:
        details.append(f"retry after {reply.retry_after:g} s")
    return f"{text} ({', '.join(details)})" if details else text
