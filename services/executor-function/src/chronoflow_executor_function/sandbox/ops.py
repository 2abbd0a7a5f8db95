"""Host operations requested by a sandbox, validated and performed by the parent.

Nothing a worker sends is trusted: the arguments are checked here again (the SDK checks them
too, for friendlier errors), whatever the code inside the sandbox did to its own prototypes.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from chronoflow_executor_function.sandbox.bridge import HostBridge, HttpRequest
from chronoflow_executor_function.sandbox.model import JsonValue, Limits

HTTP = "http"
MESSAGE = "message"
SLEEP = "sleep"

HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
HTTP_SCHEMES = frozenset({"http", "https"})
MAX_URL_CHARS = 8192
MAX_HEADERS = 64
MAX_HEADER_CHARS = 8192
MAX_RECIPIENT_CHARS = 256
# Headers the HTTP client owns: letting the function set them would desynchronise framing or
# address a different virtual host than the one the egress policy approved.
FORBIDDEN_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"}
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class OpRejected(Exception):  # noqa: N818 - it is a refusal reported to JavaScript
    """The call's arguments are not acceptable; the message is what JavaScript sees."""


@dataclass(frozen=True, slots=True)
class HttpCall:
    """A validated ``ctx.http.*`` call."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None


def parse_http(args: Mapping[str, Any], limits: Limits) -> HttpCall:
    """Check a ``ctx.http`` call's arguments."""
    method, url = args.get("method"), args.get("url")
    if method not in HTTP_METHODS:
        raise OpRejected("ctx.http: unsupported method")
    assert isinstance(method, str)
    name = f"ctx.http.{method.lower()}"
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise OpRejected(f"{name}: url must be a non-empty string of at most {MAX_URL_CHARS}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise OpRejected(f"{name}: invalid url ({exc})") from None
    if parts.scheme.lower() not in HTTP_SCHEMES or not parts.hostname:
        raise OpRejected(f"{name}: only http and https URLs are allowed")
    if any(ch in url for ch in "\r\n\t\x00 "):
        raise OpRejected(f"{name}: the url contains whitespace or control characters")
    headers = _parse_headers(name, args.get("headers") or {})
    encoded = _parse_body(name, args.get("body"), limits)
    return HttpCall(method=method, url=url, headers=headers, body=encoded)


def _parse_headers(name: str, raw: object) -> dict[str, str]:
    if not isinstance(raw, dict) or len(raw) > MAX_HEADERS:
        raise OpRejected(f"{name}: headers must be an object of at most {MAX_HEADERS} entries")
    headers: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str) or not _TOKEN.match(key) or len(value) > MAX_HEADER_CHARS:
            raise OpRejected(f"{name}: invalid header {key[:64]!r}")
        if any(ch in value for ch in "\r\n\x00"):
            raise OpRejected(f"{name}: header {key!r} contains a line break")
        if key.lower() in FORBIDDEN_HEADERS:
            raise OpRejected(f"{name}: header {key!r} is set by the client, not the function")
        headers[key.lower()] = value
    return headers


def _parse_body(name: str, body: object, limits: Limits) -> bytes | None:
    if body is None:
        return None
    if not isinstance(body, str):
        raise OpRejected(f"{name}: body must be a string")
    encoded = body.encode("utf-8", "replace")
    if len(encoded) > limits.max_http_request_bytes:
        raise OpRejected(
            f"{name}: body exceeds maxHttpRequestBytes ({limits.max_http_request_bytes})"
        )
    return encoded


def parse_message(args: Mapping[str, Any], limits: Limits) -> tuple[str, str]:
    """Check a ``ctx.message.send`` call's arguments: ``(to, text)``."""
    to, text = args.get("to"), args.get("text")
    if not isinstance(to, str) or not to.strip() or len(to) > MAX_RECIPIENT_CHARS:
        raise OpRejected("ctx.message.send: `to` must be a non-empty string")
    if not isinstance(text, str):
        raise OpRejected("ctx.message.send: `text` must be a string")
    if len(text) > limits.max_message_chars:
        raise OpRejected(
            f"ctx.message.send: text exceeds maxMessageChars ({limits.max_message_chars})"
        )
    return to, text


def parse_sleep(args: Mapping[str, Any]) -> float:
    """Check a ``ctx.sleep`` call: the delay in seconds."""
    ms = args.get("ms")
    if isinstance(ms, bool) or not isinstance(ms, int | float) or not math.isfinite(ms) or ms < 0:
        raise OpRejected("ctx.sleep: ms must be a finite number >= 0")
    return float(ms) / 1000


def _json_or_none(value: object) -> JsonValue:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return value  # type: ignore[return-value]


async def perform(
    kind: str, args: Mapping[str, Any], host: HostBridge, limits: Limits, timeout_s: float
) -> JsonValue:
    """Perform one validated operation through the bridge; the JSON handed back to the SDK.

    ``timeout_s`` bounds an HTTP request. The caller sets it a little past the run's deadline,
    so that the deadline (which cancels whatever is in flight) is what ends a slow run.
    """
    if kind == SLEEP:
        # Not capped by the deadline: a sleep that outlasts the run is cancelled with it, so
        # the run ends as a timeout rather than waking up early and carrying on.
        await asyncio.sleep(parse_sleep(args))
        return None
    if kind == MESSAGE:
        to, text = parse_message(args, limits)
        return _json_or_none(await host.send_message(to, text))
    if kind == HTTP:
        call = parse_http(args, limits)
        response = await host.http_request(
            HttpRequest(
                method=call.method,
                url=call.url,
                headers=call.headers,
                body=call.body,
                timeout_s=max(0.001, timeout_s),
                max_response_bytes=limits.max_http_response_bytes,
            )
        )
        body = response.body
        truncated = response.truncated or len(body) > limits.max_http_response_bytes
        return {
            "status": int(response.status),
            "headers": {str(k).lower(): str(v) for k, v in response.headers.items()},
            "body": body[: limits.max_http_response_bytes].decode("utf-8", "replace"),
            "truncated": truncated,
        }
    raise OpRejected(f"unknown operation {kind!r}")
