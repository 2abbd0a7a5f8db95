"""WAHA's webhooks: the envelope, and the signature that proves WAHA sent it.

WAHA signs a webhook with ``X-Webhook-Hmac``: the hex HMAC-SHA512 of the raw body under the
key it was given as ``WHATSAPP_HOOK_HMAC_KEY`` (``X-Webhook-Hmac-Algorithm: sha512``).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from pydantic import BaseModel, ConfigDict

HMAC_HEADER = "X-Webhook-Hmac"
HMAC_ALGORITHM_HEADER = "X-Webhook-Hmac-Algorithm"
HMAC_ALGORITHM = "sha512"
SESSION_STATUS_EVENT = "session.status"


def sign(body: bytes, key: str) -> str:
    """What WAHA puts in ``X-Webhook-Hmac`` for ``body``."""
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


def signature_valid(body: bytes, key: str, signature: str | None, algorithm: str | None) -> bool:
    """Whether the webhook was signed with ``key`` (constant-time comparison)."""
    if not signature:
        return False
    if algorithm is not None and algorithm.strip().lower() != HMAC_ALGORITHM:
        return False
    return hmac.compare_digest(sign(body, key).encode(), signature.strip().lower().encode())


class StatusPayload(BaseModel):
    """``payload`` of a ``session.status`` event."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    status: str


class WahaWebhook(BaseModel):
    """The envelope of a WAHA webhook (only what the gateway reads)."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    #: When the event happened, in Unix milliseconds.
    timestamp: int | None = None
    event: str
    session: str
    payload: dict[str, Any] = {}
