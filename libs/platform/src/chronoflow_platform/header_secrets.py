"""Header values that look like credentials are encrypted before they enter an event.

The event log is immutable: a secret written there in clear would stay there forever. Values
are Fernet tokens (AES-128-CBC + HMAC-SHA256) under keys from ``CHRONOFLOW_SECRETS_KEY``
(comma-separated, newest first, so keys rotate without re-encrypting old events).
"""

from __future__ import annotations

import re

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PREFIX = "enc:v1:"
REDACTED = "***"

_SENSITIVE = re.compile(
    r"^(authorization|proxy-authorization|cookie|x-api-key|api-key|apikey)$"
    r"|token|secret|password|passwd|api[-_]?key|credential|session|signature",
    re.IGNORECASE,
)


def is_sensitive(name: str) -> bool:
    """Whether a header's value must be treated as a secret."""
    return bool(_SENSITIVE.search(name))


class HeaderCipher:
    """Encrypts sensitive header values for storage, decrypts them only at send time."""

    def __init__(self, keys: str) -> None:
        parsed = [k.strip() for k in keys.split(",") if k.strip()]
        if not parsed:
            raise ValueError("CHRONOFLOW_SECRETS_KEY holds no key")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in parsed])
        except ValueError as exc:
            raise ValueError(
                "CHRONOFLOW_SECRETS_KEY must be comma-separated Fernet keys "
                "(32 url-safe base64-encoded bytes each)"
            ) from exc

    def seal(self, headers: dict[str, str]) -> dict[str, str]:
        """Encrypt every sensitive value that is not encrypted yet."""
        return {
            k: (PREFIX + self._fernet.encrypt(v.encode()).decode())
            if is_sensitive(k) and not v.startswith(PREFIX)
            else v
            for k, v in headers.items()
        }

    def open(self, headers: dict[str, str]) -> dict[str, str]:
        """Decrypt sealed values (only the executor, just before sending, should need this)."""
        out = {}
        for k, v in headers.items():
            if not v.startswith(PREFIX):
                out[k] = v
                continue
            try:
                out[k] = self._fernet.decrypt(v.removeprefix(PREFIX).encode()).decode()
            except InvalidToken as exc:
                raise ValueError(f"header {k!r} cannot be decrypted with the keys") from exc
        return out


def redact(headers: dict[str, str]) -> dict[str, str]:
    """What clients see: sensitive values replaced, never returned in clear or sealed."""
    return {
        k: (REDACTED if v.startswith(PREFIX) or is_sensitive(k) else v) for k, v in headers.items()
    }
