"""Run events go to CF_RUNS in atomic batches (plain concurrent publishes when few; lingering
for company, groups whole and in order), and duplicates still say where the original is."""

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
    await recorder.close()


async def test_closing_stores_what_lingers(nc: NatsClient, js: JetStreamContext) -> None:
    recorder = EventRecorder(nc, js, linger=3600)
    chrono_id = new_id()
    event = started(chrono_id, 1)
    queued = recorder.record(names.runs_subject(chrono_id), event, msg_id=f"t-{event.run_id}")
    await asyncio.wait_for(recorder.close(), 30)
    raw = await js.get_msg(names.RUNS_STREAM, queued.result().seq)
    assert decode(RunStarted.TYPE, 1, raw.data or b"") == event


@pytest.mark.parametrize("count", [4, ATOMIC_MIN_BATCH + 2])
async def test_an_event_after_a_queued_one_goes_out_with_it_right_behind_it(
    nc: NatsClient, js: JetStreamContext, count: int
) -> None:
    recorder = EventRecorder(nc, js, linger=3600)
    chrono_id = new_id()
    subject = names.runs_subject(chrono_id)
    events = [started(chrono_id, n) for n in range(1, count + 1)]
    first = recorder.record(subject, events[0], msg_id=f"t-{events[0].run_id}")
    others = [recorder.record(subject, e, msg_id=f"t-{e.run_id}") for e in events[1:-1]]
    behind = recorder.record(subject, events[-1], msg_id=f"t-{events[-1].run_id}", after=first)
    recorder.flush()
    stored = await asyncio.wait_for(asyncio.gather(first, behind, *others), 30)
    seqs = [s.seq for s in stored]
    assert seqs[1] > seqs[0]  # the group keeps its order
    if count >= ATOMIC_MIN_BATCH:
        # One atomic batch, the group [first, behind] not split within it.
        assert seqs[1] == seqs[0] + 1
        assert len({await batch_of(js, seq) for seq in seqs}) == 1
    await recorder.close()


async def test_one_by_one_a_group_stops_at_its_first_failure(
    nc: NatsClient, js: JetStreamContext
) -> None:
    recorder = EventRecorder(nc, js, linger=3600)
    chrono_id = new_id()
    subject = names.runs_subject(chrono_id)
    lost, following, bystander = (started(chrono_id, n) for n in range(1, 4))
    # No stream takes this subject: this event fails (too few for an atomic batch, they go
    # one by one, a group's in order).
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
