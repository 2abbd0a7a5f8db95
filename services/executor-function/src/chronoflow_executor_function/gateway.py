"""``ctx.message.send`` on the wire: a NATS request to the waha-gateway, which owns the sessions.

Request on ``names.WAHA_SEND_SUBJECT``: WAHA's own ``sendText`` body,
``{"session", "chatId", "text"}``. The gateway answers with JSON: WAHA's message on success;
``{"error": ...}`` (a string, or an object with a ``message``) or ``{"ok": false, ...}`` when
the send was refused. The answer is what ``ctx.message.send`` resolves with.
"""

from __future__ import annotations

import json
from typing import Any

import nats.errors
from nats.aio.client import Client as NatsClient

from chronoflow_contracts import names
from chronoflow_executor_function.sandbox import HostOpError, JsonValue
from chronoflow_platform.telemetry import inject

_PREFIX = "ctx.message.send: "


class WahaGateway:
    """Sends one text through the waha-gateway and turns its refusals into HostOpErrors."""

    def __init__(self, nc: NatsClient, *, timeout_s: float) -> None:
        self._nc = nc
        self._timeout_s = timeout_s

    async def send_text(self, session: str, chat_id: str, text: str) -> JsonValue:
        """Send ``text`` to ``chat_id`` on ``session``; the gateway's answer."""
        body = json.dumps({"session": session, "chatId": chat_id, "text": text}).encode()
        try:
            reply = await self._nc.request(
                names.WAHA_SEND_SUBJECT, body, timeout=self._timeout_s, headers=inject({})
            )
        except nats.errors.NoRespondersError:
            raise HostOpError(_PREFIX + "the waha-gateway is not running") from None
        except TimeoutError:
            raise HostOpError(
                f"{_PREFIX}the waha-gateway did not answer within {self._timeout_s:g} s"
            ) from None
        try:
            answer: Any = json.loads(reply.data or b"null")
        except ValueError:
            raise HostOpError(
                _PREFIX + "the waha-gateway answered something that is not JSON"
            ) from None
        refusal = _refusal(answer)
        if refusal is not None:
            raise HostOpError(_PREFIX + refusal)
        return answer  # type: ignore[no-any-return]


def _refusal(answer: Any) -> str | None:
    """The reason in a refusing answer, or None when the message was sent."""
    if not isinstance(answer, dict):
        return None
    error = answer.get("error")
    if error is None and answer.get("ok") is not False:
        return None
    if isinstance(error, dict):
        error = error.get("message") or error.get("code")
    status = answer.get("status") or answer.get("statusCode")
    text = str(error or "the waha-gateway refused the message")
    return f"{text} (WAHA status {status})" if isinstance(status, int) else text
