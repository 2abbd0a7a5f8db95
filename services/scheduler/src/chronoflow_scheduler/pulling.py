"""Pull requests on a JetStream durable whose messages are handed over as they arrive.

nats-py's ``PullSubscription.fetch`` waits for each message of a batch through
``Subscription.next_msg``: a uuid4, a task and an ``asyncio.wait_for`` per message. In a
burst that is paid twice per fire (the fired message, then the ChronoFinished the chrono-event
consumer settles), several percent of the scheduler's CPU. Here one callback subscription on
a private inbox receives the messages of every pull request and hands each one on in turn;
a pull only waits, once, for its request to be over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import Header, StatusCode
from nats.js.errors import APIError

#: ChronoFlow connects without a JetStream domain.
_API_PREFIX = "$JS.API"
#: How long past its expiry a pull request is waited for when the server stays silent (a
#: reconnect loses pending requests, and with them the server's end-of-request status).
_GRACE_SECONDS = 1.0
#: Statuses that end a pull request: no messages (404), expired (408), and the conflicts
#: (409: the consumer was deleted or its leader moved, too many waiting requests, ...), which
#: nats-py's fetch also takes as an empty answer; the next request tells what became of it.
_ENDS_REQUEST = frozenset({StatusCode.NO_MESSAGES, StatusCode.REQUEST_TIMEOUT, StatusCode.CONFLICT})

#: Takes one delivered message (it may wait: the next message waits behind it).
Deliver = Callable[[Msg], Awaitable[None]]


class Puller:
    """Pulls from one durable of one stream, one request at a time."""

    def __init__(self, nc: NatsClient, *, stream: str, durable: str, deliver: Deliver) -> None:
        self._nc = nc
        self._next_subject = f"{_API_PREFIX}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._deliver = deliver
        self._inbox = ""
        self._sub: Subscription | None = None
        #: Messages the request in progress may still bring.
        self._expected = 0
        self._over = asyncio.Event()
        self._error: APIError | None = None

    async def start(self) -> None:
        """Subscribe the inbox the requests are answered on."""
        self._inbox = self._nc.new_inbox()
        # No pending limits: what arrives is bounded by the requests, and a message dropped
        # here would only come back after its acknowledgement wait.
        self._sub = await self._nc.subscribe(
            self._inbox, cb=self._on_msg, pending_msgs_limit=0, pending_bytes_limit=0
        )

    async def stop(self) -> None:
        """Unsubscribe (messages of a request still open are redelivered after their wait)."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def __aenter__(self) -> Puller:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def pull(self, batch: int, wait: float) -> None:
        """Ask for up to ``batch`` messages, each handed to ``deliver`` as it arrives, and
        return once the request is over: all of them delivered, the server ended it (nothing
        more within ``wait`` seconds), or it stayed silent past that.

        Raises ``APIError`` for an answer that is not a message or the end of the request
        (``ServiceUnavailableError`` when no one serves the durable: it is gone).
        """
        if self._sub is None:
            raise RuntimeError("Puller.pull before start")
        self._expected = batch
        self._over.clear()
        request = {"batch": batch, "expires": int(wait * 1_000_000_000)}
        await self._nc.publish(self._next_subject, json.dumps(request).encode(), self._inbox)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._over.wait(), wait + _GRACE_SECONDS)
        self._expected = 0
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    async def _on_msg(self, msg: Msg) -> None:
        status = msg.headers.get(Header.STATUS) if msg.headers else None
        if not status:
            # A message of the current request, or a late one of an earlier request that was
            # given up on: a delivery either way, whose acknowledgement timer runs.
            await self._deliver(msg)
            self._expected -= 1
            if self._expected <= 0:
                self._over.set()
        elif status == StatusCode.CONTROL_MESSAGE:
            return  # an idle heartbeat (not asked for)
        elif status in _ENDS_REQUEST:
            self._over.set()
        else:
            try:
                APIError.from_msg(msg)
            except APIError as exc:
                self._error = exc
            self._over.set()
