"""Standard Webhooks signing: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

The signature is ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`` where the key is
the base64 part of a ``whsec_…`` secret. Several secrets (a rotation) give several signatures,
space-separated; a receiver accepts the request when any one of them verifies.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets as token_source
import time
from collections.abc import Mapping, Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SIGNATURE_VERSION = "v1"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
# How far a receiver lets the timestamp drift from its clock; bounds replay of a captured request.
DEFAULT_TOLERANCE_S = 5 * 60


class SignatureError(ValueError):
    """A secret is malformed, or a request's webhook headers do not verify."""


@functools.lru_cache(maxsize=64)
def secret_key(secret: str) -> bytes:
    """The HMAC key inside ``whsec_<base64>`` (the prefix is optional, as in the reference).

    Remembered per secret: an executor signs every request with the same one or two, and
    decoding them again each time was a visible share of a webhook's CPU.
    """
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        # Never echo the secret: it would land in logs.
        raise SignatureError("webhook secret is not whsec_ followed by base64") from None
    if not key:
        raise SignatureError("webhook secret is empty")
    return key


def generate_secret(nbytes: int = 32) -> str:
    """A fresh ``whsec_`` secret (the standard asks for 24 to 64 random bytes)."""
    if not 24 <= nbytes <= 64:
        raise ValueError("a webhook secret should hold 24 to 64 bytes")
    return SECRET_PREFIX + base64.b64encode(token_source.token_bytes(nbytes)).decode("ascii")


def _as_list(secret: str | Sequence[str]) -> list[str]:
    keys = [secret] if isinstance(secret, str) else list(secret)
    if not keys:
        raise SignatureError("no webhook secret given")
    return keys


@functools.lru_cache(maxsize=64)
def _keyed(secret: str) -> hmac.HMAC:
    # HMAC-SHA256 with the key already mixed in; copied for each message. Keying it (with the
    # hashes OpenSSL looks up) was two thirds of a signature's cost, ~1 us, on every request.
    return hmac.new(secret_key(secret), digestmod=hashlib.sha256)


def _signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> bytes:
    mac = _keyed(secret).copy()
    mac.update(f"{msg_id}.{timestamp}.".encode() + body)
    return mac.digest()


def sign(secret: str | Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per secret, space-separated."""
    return " ".join(
        f"{SIGNATURE_VERSION},"
        + binascii.b2a_base64(_signature(s, msg_id, timestamp, body), newline=False).decode()
        for s in _as_list(secret)
    )


def webhook_headers(
    secret: str | Sequence[str], msg_id: str, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt.

    Keep ``msg_id`` the same across retries of one delivery (receivers deduplicate on it) and
    let each attempt take a fresh ``timestamp`` (default: now), so it stays within tolerance.
    """
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign(secret, msg_id, ts, body),
    }


def verify(
    secret: str | Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: int | None = None,
) -> None:
    """Check a received request's webhook headers against its raw body; raise SignatureError.

    ``secret`` may list several secrets, so a receiver can accept both sides of a rotation.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get(ID_HEADER)
    timestamp_text = lowered.get(TIMESTAMP_HEADER)
    signatures = lowered.get(SIGNATURE_HEADER)
    if not (msg_id and timestamp_text and signatures):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not (timestamp_text.isascii() and timestamp_text.isdigit()):
        raise SignatureError("webhook-timestamp is not a Unix time in seconds")
    timestamp = int(timestamp_text)
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError("webhook-timestamp is outside the tolerance")
    offered: list[bytes] = []
    for item in signatures.split():
        version, _, encoded = item.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            offered.append(base64.b64decode(encoded, validate=True))
        except binascii.Error:
            continue
    for each in _as_list(secret):
        expected = _signature(each, msg_id, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return
    raise SignatureError("no webhook-signature matches")
