"""Run events go to CF_RUNS in atomic batches (plain concurrent publishes when few), and
duplicates still say where the original is."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from chronoflow_contracts import decode, names, new_id
from chronoflow_contracts.base import utc_now
from chronoflow_contracts.chrono import TargetType
from chronoflow_contracts.runs import RunStarted, occurrence_id, run_id
from chronoflow_platform.executor.recording import EventRecorder
from chronoflow_platform.publishing import ATOMIC_MIN_BATCH


def started(chrono_id: str, n: int) -> RunStarted:
    now = utc_now()
    occurrence = occurrence_id(chrono_id, now)
    return RunStarted(
        chrono_id=chrono_id,
        run_id=run_id(occurrence, n),
        occurrence_id=occurrence,
        scheduled_for=now,
        attempt=n,
        target_type=TargetType.HTTP,
        started_at=now,
    )


async def test_concurrent_events_share_a_batch_and_learn_their_sequences(
    nc: NatsClient, js: JetStreamContext
) -> None:
    recorder = EventRecorder(nc, js, max_in_flight=1)
    chrono_id = new_id()
    subject = names.runs_subject(chrono_id)
    events = [started(chrono_id, n) for n in range(1, 51)]
    before = (await js.stream_info(names.RUNS_STREAM)).state.last_seq
    stored = await asyncio.gather(
        *(recorder.record(subject, e, msg_id=f"t-{e.run_id}") for e in events)
    )
    assert [s.seq for s in stored] == list(range(before + 1, before + 51))
    assert not any(s.duplicate for s in stored)
    for event, where in zip(events, stored, strict=True):
        raw = await js.get_msg(names.RUNS_STREAM, where.seq)
        assert decode(RunStarted.TYPE, 1, raw.data or b"") == event
    await recorder.close()


async def test_a_duplicate_in_a_batch_is_found_and_the_rest_stored(
    nc: NatsClient, js: JetStreamContext
) -> None:
    recorder = EventRecorder(nc, js)
    chrono_id = new_id()
    subject = names.runs_subject(chrono_id)
    first = started(chrono_id, 1)
    [original] = await asyncio.gather(recorder.record(subject, first, msg_id=f"t-{first.run_id}"))
    # Enough for an atomic batch, which the duplicate makes the server refuse whole.
    others = [started(chrono_id, n) for n in range(2, ATOMIC_MIN_BATCH + 2)]
    results = await asyncio.gather(
        recorder.record(subject, first, msg_id=f"t-{first.run_id}"),
        *(recorder.record(subject, e, msg_id=f"t-{e.run_id}") for e in others),
    )
    assert results[0].duplicate
    assert results[0].seq == original.seq
    assert not any(r.duplicate for r in results[1:])
    info = await js.stream_info(names.RUNS_STREAM, subjects_filter=subject)
    assert (info.state.subjects or {})[subject] == ATOMIC_MIN_BATCH + 1
    await recorder.close()


async def test_without_atomic_batches_events_are_stored_one_by_one(
    nc: NatsClient, js: JetStreamContext
) -> None:
    config: StreamConfig = (await js.stream_info(names.RUNS_STREAM)).config
    config.allow_atomic = False
    await js.update_stream(config)
    try:
        recorder = EventRecorder(nc, js)
        chrono_id = new_id()
        subject = names.runs_subject(chrono_id)
        few = [started(chrono_id, n) for n in range(1, 4)]
        stored = await asyncio.gather(
            *(recorder.record(subject, e, msg_id=f"t-{e.run_id}") for e in few)
        )
        assert len({s.seq for s in stored}) == 3
        still_atomic = recorder.atomic
        assert still_atomic is True  # too few to try a batch
        many = [started(chrono_id, n) for n in range(4, ATOMIC_MIN_BATCH + 4)]
        stored = await asyncio.gather(
            *(recorder.record(subject, e, msg_id=f"t-{e.run_id}") for e in many)
        )
        assert len({s.seq for s in stored}) == ATOMIC_MIN_BATCH
        assert recorder.atomic is False
        await recorder.close()
    finally:
        config.allow_atomic = True
        await js.update_stream(config)
