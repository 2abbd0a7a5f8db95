"""Channels follow their WAHA session: each status change becomes a ``ChannelStatusChanged``.

Three ways a status reaches a channel, all through :class:`StatusFollower`:

- WAHA's ``session.status`` webhooks, in the order WAHA sends them;
- a new (or re-pointed) channel takes its session's current status at once, asked from WAHA
  (:func:`watch_channels` follows the channel events), so a channel created after its session
  paired does not show ``STOPPED``;
- a periodic reconcile reads every session from WAHA and corrects what a lost webhook left.

An event is appended only when the channel's status changes; WAHA's event id is its message id,
so a webhook WAHA delivers twice is stored once. The projector then moves ``channels.status``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from chronoflow_contracts import decode, names
from chronoflow_contracts.channels import (
    ChannelCreated,
    ChannelStatus,
    ChannelStatusChanged,
    ChannelUpdated,
)
from chronoflow_platform.publishing import publish_event
from chronoflow_waha_gateway.db import ChannelDirectory, ChannelRow
from chronoflow_waha_gateway.sessions import ABSENT, SessionBook, channel_status
from chronoflow_waha_gateway.waha_client import WahaClient, WahaError

log = logging.getLogger(__name__)


class StatusFollower:
    """Turns session statuses into ``ChannelStatusChanged`` events, once per change."""

    def __init__(
        self,
        *,
        js: JetStreamContext,
        waha: WahaClient,
        directory: ChannelDirectory,
        book: SessionBook,
        clock: Callable[[], float],
    ) -> None:
        self._js = js
        self._waha = waha
        self._directory = directory
        self._book = book
        self._clock = clock
        # Emitting is serialized, so one channel's events are published in the order decided.
        self._lock = asyncio.Lock()
        self._emitted: dict[str, ChannelStatus] = {}

    async def on_status(
        self, session: str, status: str, *, event_id: str | None, at: float | None = None
    ) -> int:
        """A status WAHA reported (``at``: when, Unix seconds); how many channels changed.

        Channels follow the webhooks in the order WAHA sends them, which is the order the
        statuses happened.
        """
        self._book.learn(session, status, learnt_at=at)
        wanted = channel_status(status)
        if wanted is None:
            log.info("session %s reported %s, which no channel status stands for", session, status)
            return 0
        async with self._lock:
            rows = await self._directory.channels_of(session)
            return await self._emit(rows, session, wanted, event_id)

    async def on_channel(self, channel_id: str, session: str) -> int:
        """A channel was created or re-pointed: give it its session's current status."""
        try:
            await self._book.ask(session)
        except WahaError as exc:
            log.warning("cannot ask WAHA for session %s (the reconcile will): %s", session, exc)
            return 0
        async with self._lock:
            known = self._book.get(session)
            wanted = channel_status(known.status) if known is not None else None
            if wanted is None:
                return 0
            # Not projected yet: the projector inserts a new channel as STOPPED.
            current = await self._directory.status_of(channel_id) or ChannelStatus.STOPPED.value
            row = ChannelRow(channel_id, session, current)
            return await self._emit([row], session, wanted, None)

    async def reconcile(self) -> int:
        """Read every session from WAHA and correct channels that missed a change."""
        asked_at = self._clock()
        sessions = await self._waha.list_sessions(include_stopped=True)
        for info in sessions:
            self._book.learn_session(info, learnt_at=asked_at)
        listed = {info.name for info in sessions}
        changed = 0
        async with self._lock:
            rows = await self._directory.all()
            for session in sorted({row.session for row in rows}):
                if session not in listed:
                    self._book.learn(session, ABSENT, learnt_at=asked_at)
                # The freshest knowledge: a webhook that came after the list wins.
                known = self._book.get(session)
                wanted = channel_status(known.status) if known is not None else None
                if wanted is None:
                    continue
                mine = [row for row in rows if row.session == session]
                changed += await self._emit(mine, session, wanted, None)
        return changed

    async def _emit(
        self, rows: list[ChannelRow], session: str, status: ChannelStatus, event_id: str | None
    ) -> int:
        changed = 0
        for row in rows:
            if self._emitted.get(row.id, row.status) == status:
                continue
            event = ChannelStatusChanged(channel_id=row.id, session=session, status=status)
            # WAHA retries a webhook it thinks failed: the same event is stored once.
            msg_id = f"waha-{event_id}-{row.id}" if event_id else None
            await publish_event(
                self._js, names.aggregate_subject("channel", row.id), event, msg_id=msg_id
            )
            self._emitted[row.id] = status
            changed += 1
            log.info("channel %s (session %s) is now %s", row.id, session, status.value)
        return changed


async def watch_channels(js: JetStreamContext, follower: StatusFollower) -> None:
    """Follow channel events from now on; each new or re-pointed channel gets its status."""
    sub = await js.subscribe(
        names.aggregate_filter("channel"),
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.NEW,
    )
    try:
        async for msg in sub.messages:
            headers = msg.headers or {}
            kind = headers.get(names.EVENT_TYPE)
            if kind not in (ChannelCreated.TYPE, ChannelUpdated.TYPE):
                continue
            try:
                event = decode(kind, int(headers.get(names.EVENT_VERSION, "1")), msg.data)
            except Exception as exc:  # one unreadable event must not stop the watch
                log.warning("skipping an unreadable %s: %s", kind, exc)
                continue
            if isinstance(event, ChannelCreated | ChannelUpdated):
                await follower.on_channel(event.channel_id, event.definition.config.session)
    finally:
        await sub.unsubscribe()
