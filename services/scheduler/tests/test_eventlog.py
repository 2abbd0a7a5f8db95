"""Reads of chronos' last events, coalesced into batched direct gets, on a real JetStream."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from chronoflow_contracts import names, new_id, utc_now
from chronoflow_contracts.chrono import ChronoCreated, ChronoTriggered
from chronoflow_scheduler.eventlog import EventLog, LastEvents
from chronoflow_scheduler.testing import ChronoWriter, http_definition, once


async def _created(writer: ChronoWriter) -> tuple[str, int]:
    chrono_id = await writer.create(http_definition(once(utc_now() + timedelta(hours=1))))
    return chrono_id, writer.versions[chrono_id]


async def test_concurrent_reads_each_get_their_own_subjects_last_event(
    nc: NatsClient, js: JetStreamContext
) -> None:
    writer = ChronoWriter(js)
    chronos = [await _created(writer) for _ in range(5)]
    # One chrono has a later event (a trigger): its last event is that one.
    moved_id, moved_version = chronos[0]
    _, trigger_seq = await writer.trigger(moved_id)
    log = EventLog(nc, js)
    await log.start()
    try:
        missing = new_id()
        lasts = await asyncio.gather(
            *(log.last(chrono_id) for chrono_id, _ in chronos), log.last(missing)
        )
        assert lasts[0] == (trigger_seq, ChronoTriggered.TYPE)
        assert lasts[1:5] == [(version, ChronoCreated.TYPE) for _, version in chronos[1:]]
        assert lasts[5] is None
        verdict = await log.verify(moved_id, moved_version)  # only a trigger followed
        assert (verdict.holds, verdict.latest) == (True, trigger_seq)
        assert (await log.verify(missing, 3)).holds is False
    finally:
        await log.stop()


async def test_more_reads_than_one_batch_holds_are_split(
    nc: NatsClient, js: JetStreamContext
) -> None:
    writer = ChronoWriter(js)
    chronos = [await _created(writer) for _ in range(7)]
    lasts = LastEvents(nc, stream=names.EVENTS_STREAM, max_batch=3)
    await lasts.start()
    try:
        subjects = [names.aggregate_subject("chrono", chrono_id) for chrono_id, _ in chronos]
        # Each subject asked twice: both askers get the answer.
        found = await asyncio.gather(*(lasts.get(s) for s in subjects + subjects))
        expected = [(version, ChronoCreated.TYPE) for _, version in chronos]
        assert found == expected + expected
    finally:
        await lasts.stop()
