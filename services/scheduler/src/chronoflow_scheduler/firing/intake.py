"""The fired messages a replica has in hand: admission, keepalive, redelivered copies.

Fetching is limited to what can be prepared soon (the rest waits in JetStream, where no
acknowledgement timer runs); everything in hand is marked in progress by one loop; and a copy
JetStream redelivers while the first is still being worked on follows the first instead of
repeating the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg

from chronoflow_platform.delivery import stream_sequence_of
from chronoflow_scheduler.domain import keepalive_interval

#: Held messages looked at between two yields to the event loop in a keepalive pass.
_KEEPALIVE_SLICE = 64


class Ticket:
    """A fired message's place among those waiting to be prepared (see ``wait_for_room``)."""

    __slots__ = ("_leave",)

    def __init__(self, leave: Callable[[], None]) -> None:
        self._leave: Callable[[], None] | None = leave

    def done(self) -> None:
        """Prepared (or settled without it): make room for the next fetch. Idempotent."""
        if self._leave is not None:
            self._leave()
            self._leave = None


#: Processes one message to its settlement: True once acknowledged, False if handed back.
Process = Callable[[Msg, Ticket], Awaitable[bool]]


class Intake:
    """Tracks the fired messages in hand in one replica."""

    def __init__(self, *, ack_wait_seconds: float, retry_delay_seconds: float) -> None:
        self._keepalive = keepalive_interval(ack_wait_seconds)
        #: How old a mark may get: a message is marked again once its acknowledgement
        #: deadline is one keepalive interval away.
        self._refresh_after = max(ack_wait_seconds - self._keepalive, self._keepalive)
        self._retry_delay = retry_delay_seconds
        #: Every message in hand (fetched, not yet settled) and when JetStream last heard of it.
        self._in_hand: dict[int, tuple[Msg, float]] = {}
        #: Stream sequence → how its first delivery in this replica was settled.
        self._working: dict[int, asyncio.Future[bool]] = {}
        self._unprepared = 0
        self._room = asyncio.Event()
        self._room.set()

    @property
    def unprepared(self) -> int:
        """Messages in hand that are not yet prepared and held."""
        return self._unprepared

    async def wait_for_room(self, limit: int) -> None:
        """Until fewer than ``limit`` messages wait to be prepared."""
        while self._unprepared >= limit:
            self._room.clear()
            await self._room.wait()

    def _admit(self) -> Ticket:
        self._unprepared += 1

        def leave() -> None:
            self._unprepared -= 1
            self._room.set()

        return Ticket(leave)

    async def take(self, msg: Msg, process: Process) -> None:
        """Process ``msg`` (or follow its first copy) while keeping it alive in JetStream."""
        key = id(msg)
        self._in_hand[key] = (msg, time.monotonic())
        ticket = self._admit()
        # From the reply subject: nats-py's msg.metadata parses all of it (~5 us a fire).
        seq = stream_sequence_of(msg)
        first = self._working.get(seq)
        try:
            if first is not None:
                ticket.done()
                # JetStream redelivered a message this replica is still working on (its
                # acknowledgement timer ran out under load): follow the first copy instead of
                # doing the work twice, and settle this delivery the same way.
                await self._follow(msg, first)
                return
            settled: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._working[seq] = settled
            try:
                settled.set_result(await process(msg, ticket))
            finally:
                del self._working[seq]
                if not settled.done():
                    settled.cancel()
        finally:
            del self._in_hand[key]
            ticket.done()

    async def _follow(self, msg: Msg, first: asyncio.Future[bool]) -> None:
        try:
            acked = await asyncio.shield(first)
        except asyncio.CancelledError:
            if not first.cancelled():
                raise
            acked = False
        if acked:
            await msg.ack()
        else:
            await msg.nak(delay=self._retry_delay)

    async def keepalive(self) -> None:
        """Until cancelled: tell JetStream every message in hand is still being worked on.

        One loop for all of them rather than a timer each (a burst holds thousands). Each is
        marked when its acknowledgement deadline is a keepalive interval (a third of the
        acknowledgement wait) away, at most a quarter interval later: every mark is a message
        to nats-server, and marking each message every interval instead sent ~1.7 times as
        many while a burst was held. A replica that dies is still noticed one
        acknowledgement wait after its last mark. The loop yields every few dozen marks: a
        pass over thousands of held messages in one go stalled the event loop, and with it
        the releases due meanwhile, for tens of milliseconds.
        """
        while True:
            await asyncio.sleep(self._keepalive / 4)
            due = time.monotonic() - self._refresh_after
            for n, (key, (msg, beat)) in enumerate(list(self._in_hand.items())):
                if n % _KEEPALIVE_SLICE == _KEEPALIVE_SLICE - 1:
                    await asyncio.sleep(0)
                if beat <= due and key in self._in_hand:
                    self._in_hand[key] = (msg, time.monotonic())
                    with contextlib.suppress(Exception):  # a lost one is redelivered: harmless
                        await msg.in_progress()
