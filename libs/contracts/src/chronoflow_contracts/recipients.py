"""WhatsApp recipients: the one rule that turns what a user wrote into a WAHA chat id.

The api validates MESSAGE chronos with it and executor-function applies it to
``ctx.message.send({to})``, so a number accepted in one place is sent the same way in the other.
"""

from __future__ import annotations

import re

_PHONE_CHARS = re.compile(r"[\s().-]")
_PHONE = re.compile(r"^\+?[1-9]\d{7,14}$")
_CHAT_ID = re.compile(r"^(\d{8,15}@c\.us|[\d-]{10,40}@g\.us)$")


def normalize_recipient(value: str) -> str | None:
    """``+55 11 99999-9999`` → ``5511999999999@c.us``; chat ids pass through; None if invalid."""
    value = value.strip()
    if _CHAT_ID.match(value):
        return value
    digits = _PHONE_CHARS.sub("", value)
    if _PHONE.match(digits):
        return digits.lstrip("+") + "@c.us"
    return None
