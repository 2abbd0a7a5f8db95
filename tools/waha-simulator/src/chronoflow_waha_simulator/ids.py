"""Identifiers shaped like WAHA's: event ids, message ids, QR payloads and pairing codes."""

from __future__ import annotations

import base64
import secrets
import time

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def ulid() -> str:
    """A lower-case ULID: 48 bits of milliseconds, then 80 random bits."""
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def event_id() -> str:
    """``evt_`` plus a lower-case ULID, as in WAHA's event envelope."""
    return f"evt_{ulid()}"


def message_id(chat_id: str, key: str | None = None) -> str:
    """A WEBJS-style serialized id of a message we sent: ``true_<chatId>_<key>``."""
    return f"true_{chat_id}_{key or '3EB0' + secrets.token_hex(8).upper()}"


def qr_value() -> str:
    """A payload shaped like WhatsApp's linking QR: ``2@ref,noise key,identity key,secret``."""
    parts = [secrets.token_bytes(n) for n in (48, 32, 32, 32)]
    ref, *keys = (base64.b64encode(p).decode() for p in parts)
    return "2@" + ",".join([ref, *keys])


def pairing_code() -> str:
    """An 8-character linking code shown as ``ABCD-EFGH``."""
    alphabet = "ABCDEFGHJKLMNPQRSTVWXYZ23456789"
    code = "".join(secrets.choice(alphabet) for _ in range(8))
    return f"{code[:4]}-{code[4:]}"
