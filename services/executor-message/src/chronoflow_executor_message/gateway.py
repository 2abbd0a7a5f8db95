"""The waha-gateway over NATS request/reply: one text per request, answered with a typed reply.

A request the gateway never answered may still have been sent; asking again is safe, since
the idempotency key makes the gateway answer a second request with the first message id.
"""

from __future__ import annotations

from typing import Protocol

import nats.errors
from nats.aio.client import Client as NatsClient
from pydantic import ValidationError

from chronoflow_contracts import names
from chronoflow_contracts.waha import SendErrorCode, WahaSendReply, WahaSendRequest
from chronoflow_platform.telemetry import inject


def unavailable(error: str) -> WahaSendReply:
    """A reply standing for a gateway that did not answer."""
    return WahaSendReply(ok=False, code=SendErrorCode.UNAVAILABLE, error=error, retryable=True)


class TextSender(Protocol):
    """What the executor needs of the gateway (tests script it)."""

    async def send(self, request: WahaSendRequest) -> WahaSendReply:
        """The gateway's answer to one send request."""
        ...


class GatewayClient:
    """Sends texts through the waha-gateway."""

    def __init__(self, nc: NatsClient, *, timeout_s: float) -> None:
        self._nc = nc
        self._timeout_s = timeout_s

    async def send(self, request: WahaSendRequest) -> WahaSendReply:
        """The gateway's answer; a missing or unreadable one becomes a retryable refusal."""
        body = request.model_dump_json(by_alias=True, exclude_none=True).encode()
        try:
            reply = await self._nc.request(
                names.WAHA_SEND_SUBJECT, body, timeout=self._timeout_s, headers=inject({})
            )
        except nats.errors.NoRespondersError:
            return unavailable("the waha-gateway is not running")
        except TimeoutError:
            return unavailable(f"the waha-gateway did not answer within {self._timeout_s:g} s")
        except nats.errors.Error as exc:
            return unavailable(f"cannot reach the waha-gateway: {exc}")
        try:
            return WahaSendReply.model_validate_json(reply.data)
        except ValidationError:
            return unavailable("the waha-gateway answered something unreadable")
