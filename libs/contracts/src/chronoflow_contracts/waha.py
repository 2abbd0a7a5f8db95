"""The waha-gateway's send request/reply on ``names.WAHA_SEND_SUBJECT`` (core NATS, JSON).

A request names the WhatsApp session directly (``session``) or through a channel
(``channelId``, resolved by the gateway from the channels read model), the chat and the text.
``idempotencyKey`` makes the send happen once: a second request with the same key is answered
with the first one's message id, without sending again.

The reply is ``{ok: true, messageId, session, chatId, deduplicated}`` or
``{ok: false, error, code, retryable, retryAfter?, status?, sessionStatus?}``; ``retryAfter``
is in seconds and ``status`` is WAHA's HTTP status when WAHA answered.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field, model_validator

from chronoflow_contracts.base import CamelModel

#: WAHA session names ChronoFlow accepts (the same rule as ``ChannelConfig.session``).
SESSION_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class WahaSendRequest(CamelModel):
    """One text to one chat through the waha-gateway."""

    # Newer senders may add fields; an older gateway must still serve them.
    model_config = ConfigDict(extra="ignore")

    session: str | None = Field(default=None, pattern=SESSION_PATTERN)
    channel_id: str | None = Field(default=None, min_length=1, max_length=64)
    chat_id: str = Field(min_length=1, max_length=128)
    text: str = Field(min_length=1, max_length=65_536)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=512)

    @model_validator(mode="after")
    def _one_session_source(self) -> WahaSendRequest:
        if (self.session is None) == (self.channel_id is None):
            raise ValueError("give exactly one of session and channelId")
        return self


class SendErrorCode(StrEnum):
    """Why the gateway did not send; the value is also the ``outcome`` of its metrics."""

    INVALID_REQUEST = "invalid_request"
    """The request is not a valid ``WahaSendRequest`` (or the chat id is not one)."""
    UNKNOWN_CHANNEL = "unknown_channel"
    SESSION_NOT_WORKING = "session_not_working"
    """The session is not ``WORKING``: it needs a QR scan, a start, or WAHA says it is gone."""
    RATE_LIMITED = "rate_limited"
    """WhatsApp or WAHA throttled (429, or a 5xx carrying 429): wait ``retryAfter``."""
    PACED = "paced"
    """The session's pacing has no free slot soon enough: ask again after ``retryAfter``."""
    REJECTED = "rejected"
    """WAHA refused the request itself (a 4xx): sending it again will not help."""
    UNAVAILABLE = "unavailable"
    """WAHA did not answer, or failed (5xx): a later attempt may succeed."""
    INTERNAL = "internal"


class WahaSendReply(CamelModel):
    """The gateway's answer to a :class:`WahaSendRequest`."""

    model_config = ConfigDict(extra="ignore")

    ok: bool
    message_id: str | None = None
    session: str | None = None
    chat_id: str | None = None
    #: The text had been sent before under the same idempotency key; nothing was sent now.
    deduplicated: bool = False
    error: str | None = None
    code: SendErrorCode | None = None
    retryable: bool = False
    retry_after: float | None = Field(default=None, ge=0)
    status: int | None = None
    session_status: str | None = None
