"""The NATS responder on ``names.WAHA_SEND_SUBJECT``: decode a send request, answer the reply.

nats-py runs one subscription's callbacks one after another, so each request gets its own
task (a paced send waits seconds); at most ``max_inflight`` are handled at once, after which
the callback waits and NATS holds further requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from chronoflow_contracts import names
from chronoflow_contracts.waha import SendErrorCode, WahaSendReply, WahaSendRequest
from chronoflow_platform.telemetry import consumer_span
from chronoflow_waha_gateway.sending import Sender, refused

log = logging.getLogger(__name__)

MAX_INFLIGHT = 512


class SendResponder:
    """Serves send requests in the gateway's queue group until stopped."""

    def __init__(self, nc: NatsClient, sender: Sender, *, max_inflight: int = MAX_INFLIGHT) -> None:
        self._nc = nc
        self._sender = sender
        self._slots = asyncio.Semaphore(max_inflight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sub: Subscription | None = None

    async def start(self) -> None:
        """Subscribe (replies go out as soon as each send ends)."""
        self._sub = await self._nc.subscribe(
            names.WAHA_SEND_SUBJECT, queue=names.WAHA_GATEWAY_QUEUE, cb=self._on_request
        )
        await self._nc.flush()

    async def stop(self, grace_s: float = 10.0) -> None:
        """Take no more requests; let those in flight finish within ``grace_s``."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _on_request(self, msg: Msg) -> None:
        await self._slots.acquire()
        task = asyncio.get_running_loop().create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("send request crashed", exc_info=exc)

    async def _answer(self, msg: Msg) -> None:
        with consumer_span("waha-gateway send", msg.headers):
            reply = await self._reply_to(msg.data)
        if msg.reply:
            body = reply.model_dump_json(by_alias=True, exclude_none=True).encode()
            await msg.respond(body)

    async def _reply_to(self, data: bytes) -> WahaSendReply:
        try:
            request = WahaSendRequest.model_validate_json(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            return self._sender.count(
                refused(SendErrorCode.INVALID_REQUEST, f"invalid send request: {problems}")
            )
        try:
            return await self._sender.send(request)
        except Exception:
            log.exception("send to %s failed unexpectedly", request.chat_id)
            return self._sender.count(
                refused(
                    SendErrorCode.INTERNAL,
                    "the waha-gateway failed unexpectedly; try again",
                    retryable=True,
                    chat_id=request.chat_id,
                )
            )
