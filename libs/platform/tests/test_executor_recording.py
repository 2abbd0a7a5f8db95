"""Run events go to CF_RUNS in atomic batches (lingering for company, groups whole and in order),
and duplicates still say where the original is."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NoStreamResponseError

from chronoflow_contracts import decode, names, new_id
from chronoflow_contracts.base import utc_now
from chronoflow_contracts.chrono import TargetType
from chronoflow_contracts.runs import RunStarted, occurrence_id, run_id
from chronoflow_platform.executor.recording import EventRecorder, Stored


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
    others = [started(chrono_id, n) for n in range(2, 6)]
    results = await asyncio.gather(
        recorder.record(subject, first, msg_id=f"t-{first.run_id}"),
        *(recorder.record(subject, e, msg_id=f"t-{e.run_id}") for e in others),
    )
    assert results[0].duplicate
    assert results[0].seq == original.seq
    assert not any(r.duplicate for r in results[1:])
    info = await js.stream_info(names.RUNS_STREAM, subjects_filter=subject)
    assert (info.state.subjects or {})[subject] == 5
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
        events = [started(chrono_id, n) for n in range(1, 4)]
        stored = await asyncio.gather(
            *(recorder.record(subject, e, msg_id=f"t-{e.run_id}") for e in events)
        )
        assert len({s.seq for s in stored}) == 3
        assert recorder.atomic is False
        await recorder.close()
    finally:
        config.allow_atomic = True
        await js.update_stream(config)


async def batch_of(js: JetStreamContext, seq: int) -> str:
    raw = await js.get_msg(names.RUNS_STREAM, seq)
    return str((raw.headers or {})["Nats-Batch-Id"])


async def test_a_lone_event_is_stored_after_the_linger_without_a_flush(
    nc: NatsClient, js: JetStreamContext
) -> None:
    recorder = EventRecorder(nc, js)
    chrono_id = new_id()
    event = started(chrono_id, 1)
    # Bounded only so that a linger that never ends fails the test instead of hanging it.
    stored = await asyncio.wait_for(
        recorder.record(names.runs_subject(chrono_id), event, msg_id=f"t-{event.run_id}"), 30
    )
    raw = await js.get_msg(names.RUNS_STREAM, stored.seq)
    assert decode(RunStarted.TYPE, 1, raw.data or b"") == event
    await recorder.close()


async def test_events_queued_in_different_turns_wait_for_each_other_until_a_flush(
    nc: NatsClient, js: JetStreamContext
) -> None:
    recorder = EventRecorder(nc, js, linger=3600)
    chrono_id = new_id()
    subject = names.runs_subject(chrono_id)
    first, second = started(chrono_id, 1), started(chrono_id, 2)
    early = recorder.record(subject, first, msg_id=f"t-{first.run_id}")
    await asyncio.sleep(0.05)
    assert not early.done()  # lingering: nothing else is being stored
    late = recorder.record(subject, second, msg_id=f"t-{second.run_id}")
    recorder.flush()
    a, b = await asyncio.wait_for(asyncio.gather(early, late), 30)
    assert b.seq == a.seq + 1
    assert await batch_of(js, a.seq) == await batch_of(js, b.seq)
    await recorder.close()


async def test_closing_stores_what_lingers(nc: NatsClient, js: JetStreamContext) -> None:
    recorder = EventRecorder(nc, js, linger=3600)
    chrono_id = new_id()
    event = started(chrono_id, 1)
    queued = recorder.record(names.runs_subject(chrono_id), event, msg_id=f"t-{event.run_id}")
    await asyncio.wait_for(recorder.close(), 30)
    raw = await js.get_msg(names.RUNS_STREAM, queued.result().seq)
    assert decode(RunStarted.TYPE, 1, raw.data or b"") == event


async def test_an_event_after_a_queued_one_goes_in_its_batch_right_behind_it(
    nc: NatsClient, js: JetStreamContext
) -> None:
    recorder = EventRecorder(nc, js, linger=3600)
    chrono_id = new_id()
    subject = names.runs_subject(chrono_id)
    events = [started(chrono_id, n) for n in range(1, 5)]
    first = recorder.record(subject, events[0], msg_id=f"t-{events[0].run_id}")
    other = recorder.record(subject, events[1], msg_id=f"t-{events[1].run_id}")
    third = recorder.record(subject, events[2], msg_id=f"t-{events[2].run_id}")
    behind = recorder.record(subject, events[3], msg_id=f"t-{events[3].run_id}", after=first)
    recorder.flush()
    stored = await asyncio.wait_for(asyncio.gather(first, other, third, behind), 30)
    # The group [first, behind] is never split, and keeps its order within the batch.
    seqs = [s.seq for s in stored]
    assert seqs[3] == seqs[0] + 1
    assert len({await batch_of(js, seq) for seq in seqs}) == 1
    await recorder.close()


async def test_one_by_one_a_group_stops_at_its_first_failure(
    nc: NatsClient, js: JetStreamContext
) -> None:
    recorder = EventRecorder(nc, js, linger=3600)
    chrono_id = new_id()
    subject = names.runs_subject(chrono_id)
    lost, following, bystander = (started(chrono_id, n) for n in range(1, 4))
    # No stream takes this subject: the batch is refused and, one by one, this event fails.
    head = recorder.record("cf.nowhere." + chrono_id, lost, msg_id=f"t-{lost.run_id}")
    tail = recorder.record(subject, following, msg_id=f"t-{following.run_id}", after=head)
    other = recorder.record(subject, bystander, msg_id=f"t-{bystander.run_id}")
    recorder.flush()
    results = await asyncio.wait_for(asyncio.gather(head, tail, other, return_exceptions=True), 30)
    assert isinstance(results[0], NoStreamResponseError)
    assert results[1] is results[0]  # never sent: history must not read it first
    assert isinstance(results[2], Stored)
    info = await js.stream_info(names.RUNS_STREAM, subjects_filter=subject)
    assert (info.state.subjects or {})[subject] == 1
    await recorder.close()


async def test_an_event_after_a_failed_one_fails_with_it(
    nc: NatsClient, js: JetStreamContext
) -> None:
    recorder = EventRecorder(nc, js)
    chrono_id = new_id()
    lost, following = started(chrono_id, 1), started(chrono_id, 2)
    head = recorder.record("cf.nowhere." + chrono_id, lost, msg_id=f"t-{lost.run_id}")
    with pytest.raises(NoStreamResponseError) as failure:
        await asyncio.wait_for(head, 30)
    tail = recorder.record(
        names.runs_subject(chrono_id), following, msg_id=f"t-{following.run_id}", after=head
    )
    with pytest.raises(NoStreamResponseError) as same:
        await tail
    assert same.value is failure.value
    await recorder.close()
