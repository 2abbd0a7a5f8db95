"""Reading chronos' last events on a real JetStream: concurrent reads share one batched direct
get and each still gets its own chrono's answer, including "no such chrono"."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from chronoflow_contracts import names, new_id, utc_now
from chronoflow_contracts.chrono import ChronoCreated, ChronoPaused
from chronoflow_platform.publishing import publish_event
from chronoflow_scheduler.eventlog import EventLog
from chronoflow_scheduler.testing import http_definition, once


async def test_concurrent_reads_each_get_their_chronos_last_event(
    nc: NatsClient, js: JetStreamContext
) -> None:
    expected: dict[str, tuple[int, str] | None] = {}
    for n in range(300):  # more than one batch
        chrono_id = new_id()
        subject = names.aggregate_subject("chrono", chrono_id)
        created = ChronoCreated(
            chrono_id=chrono_id,
            definition=http_definition(once(utc_now() + timedelta(hours=1))),
        )
        ack = await publish_event(js, subject, created, expected_last_subject_sequence=0)
        expected[chrono_id] = (ack.seq, ChronoCreated.TYPE)
        if n % 3 == 0:
            ack = await publish_event(js, subject, ChronoPaused(chrono_id=chrono_id))
            expected[chrono_id] = (ack.seq, ChronoPaused.TYPE)
    expected[new_id()] = None  # never created

    log = EventLog(nc, js)
    requests_before = nc.stats["out_msgs"]
    try:
        answers = await asyncio.gather(*(log.last(chrono_id) for chrono_id in expected))
    finally:
        await log.close()

    assert dict(zip(expected, answers, strict=True)) == expected
    # Two batched requests, and the missing chrono asked for alone: not one request each.
    assert nc.stats["out_msgs"] - requests_before == 3


async def test_a_read_alone_and_a_missing_chrono(nc: NatsClient, js: JetStreamContext) -> None:
    log = EventLog(nc, js)
    try:
        assert await log.last(new_id()) is None
        assert list(await asyncio.gather(log.last(new_id()), log.last(new_id()))) == [None, None]
    finally:
        await log.close()
