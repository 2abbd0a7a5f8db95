"""Appending commands' events to the event store, with optimistic concurrency per aggregate."""

from __future__ import annotations

import contextlib

from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from chronoflow_api.errors import ApiError, conflict
from chronoflow_api.watermark import ProjectionWatermark
from chronoflow_contracts import Event, names
from chronoflow_contracts.names import AggregateKind
from chronoflow_platform.publishing import publish_event

_WRONG_LAST_SEQUENCE = 10071


class EventStore:
    """Appends events and, for read-your-writes, waits until the projector has applied them."""

    def __init__(self, js: JetStreamContext, watermark: ProjectionWatermark, wait: float) -> None:
        self._js = js
        self._watermark = watermark
        self._wait = wait

    async def current_version(self, kind: AggregateKind, aggregate_id: str) -> int:
        """The sequence of the aggregate's last event in the store (0 if it has none)."""
        subject = names.aggregate_subject(kind, aggregate_id)
        with contextlib.suppress(NotFoundError):
            msg = await self._js.get_last_msg(names.EVENTS_STREAM, subject, direct=True)
            return int(msg.seq or 0)
        return 0

    async def append(
        self, kind: AggregateKind, aggregate_id: str, event: Event, *, expected: int | None
    ) -> int:
        """Append ``event``; ``expected`` is the version validated against (0: must be new).

        Returns the new version (the event's stream sequence) once the read models show it.
        """
        subject = names.aggregate_subject(kind, aggregate_id)
        try:
            ack = await publish_event(
                self._js, subject, event, expected_last_subject_sequence=expected
            )
        except APIError as exc:
            if exc.err_code == _WRONG_LAST_SEQUENCE:
                current = await self.current_version(kind, aggregate_id)
                raise conflict(
                    f"{kind} {aggregate_id} changed since version {expected}; "
                    f"re-read it and retry against version {current}",
                    current,
                ) from exc
            raise
        if not await self._watermark.wait_for(names.EVENTS_STREAM, ack.seq, limit=self._wait):
            # The event is stored (the write happened); only the read model is late.
            raise ApiError(
                503,
                "projection_lagging",
                f"the change was stored as version {ack.seq} but the read model has not caught "
                "up yet; read it again shortly",
                current_version=ack.seq,
                headers={"Retry-After": "1"},
            )
        return ack.seq
