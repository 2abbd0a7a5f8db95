"""The pipe protocol between the pool (parent) and a sandbox worker process.

Frames are a 4-byte big-endian length and a JSON object (ASCII-only, so lone surrogates from
JavaScript survive the trip). Every message carries ``t``, its type:

parent -> worker: ``init`` (engine settings, compiled-module path), ``run`` (one run),
``reply`` (the result of one host operation), ``abort`` (end the run: quota exceeded).
worker -> parent: ``ready``, ``op`` (a host operation the function asked for), ``done``
(the run's result; ``retire`` when the worker exits after it). ``run``, ``reply``,
``abort``, ``op`` and ``done`` carry ``run``, the run's sequence number on that worker, so a
late reply can never reach the next run.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import time
from typing import Any

INIT = "init"
READY = "ready"
RUN = "run"
OP = "op"
REPLY = "reply"
ABORT = "abort"
DONE = "done"

MAX_FRAME = 16 * 1024 * 1024
"""Largest frame either side accepts: code, state and a capped HTTP body fit well within."""

_HEADER = 4

Message = dict[str, Any]


class ProtocolError(RuntimeError):
    """A frame was malformed, too large, or not what the protocol allows at that point."""


def encode(message: Message) -> bytes:
    """One frame."""
    payload = json.dumps(message, separators=(",", ":"), allow_nan=False).encode("ascii")
    if len(payload) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME}")
    return len(payload).to_bytes(_HEADER, "big") + payload


def decode(payload: bytes | bytearray) -> Message:
    """The message in a frame's payload."""
    try:
        message = json.loads(payload)
    except ValueError as exc:
        raise ProtocolError("frame is not JSON") from exc
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        raise ProtocolError("frame is not a typed message")
    return message


async def read_message(reader: asyncio.StreamReader) -> Message:
    """The next message from a worker (raises ``asyncio.IncompleteReadError`` at EOF)."""
    header = await reader.readexactly(_HEADER)
    size = int.from_bytes(header, "big")
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes exceeds {MAX_FRAME}")
    return decode(await reader.readexactly(size))


class FrameReader:
    """Blocking, timeout-aware frame reader over a pipe (the worker's side)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()

    def _pop(self) -> Message | None:
        if len(self._buffer) < _HEADER:
            return None
        size = int.from_bytes(self._buffer[:_HEADER], "big")
        if size > MAX_FRAME:
            raise ProtocolError(f"frame of {size} bytes exceeds {MAX_FRAME}")
        if len(self._buffer) < _HEADER + size:
            return None
        payload = self._buffer[_HEADER : _HEADER + size]
        del self._buffer[: _HEADER + size]
        return decode(payload)

    def recv(self, timeout: float | None) -> Message | None:
        """The next message; ``None`` if none came within ``timeout`` seconds (0 polls).

        Raises ``EOFError`` when the parent closed the pipe.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            message = self._pop()
            if message is not None:
                return message
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([self._fd], [], [], wait)
            if not readable:
                return None
            chunk = os.read(self._fd, 1 << 20)
            if not chunk:
                raise EOFError("the parent closed the pipe")
            self._buffer += chunk


def write_message(fd: int, message: Message) -> None:
    """Write one frame to a blocking pipe."""
    data = memoryview(encode(message))
    while data:
        written = os.write(fd, data)
        data = data[written:]
