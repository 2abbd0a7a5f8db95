"""The host side of ``ctx.http`` and ``ctx.message``: the interface the executor plugs in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from chronoflow_executor_function.sandbox.model import JsonValue


class HostOpError(Exception):
    """A host operation failed in a way the function may see; the message reaches JavaScript.

    Raise it from a bridge for refusals the user should read (``egress denied: 127.0.0.1 is
    loopback``). Any other exception is reported to JavaScript as ``<type>: <message>``.
    """


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One ``ctx.http.*`` call, already validated (method, http/https URL, sizes)."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    timeout_s: float = 10.0
    """An upper bound for the whole exchange: what is left of the run's deadline plus a
    margin. Apply a shorter timeout of your own if you like; the run's end cancels the call."""
    max_response_bytes: int = 1024 * 1024
    """Read at most this much of the body (more is dropped and ``truncated`` set)."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """What ``ctx.http.*`` resolves with, before the SDK parses the body as JSON."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    truncated: bool = False


class HostBridge(Protocol):
    """Performs the sandbox's outgoing operations.

    The address policy (no private, loopback, link-local or metadata addresses, checked after
    DNS and on every redirect) belongs here, on the host: the sandbox only asks.
    """

    async def http_request(self, request: HttpRequest) -> HttpResponse:
        """Perform one HTTP request; raise ``HostOpError`` to refuse it."""
        ...

    async def send_message(self, to: str, text: str) -> JsonValue:
        """Send one message; the JSON returned is what ``ctx.message.send`` resolves with."""
        ...
