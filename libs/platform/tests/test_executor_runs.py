"""The run ledger against a real nats-server: events in order (a fast attempt's two in one
batch), the first recorded outcome wins, retries wait in CF_WORK as ``@at`` schedules (carrying
the result when asked), give-ups."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry

from chronoflow_contracts import Event, decode, names, utc_now
from chronoflow_contracts.chrono import ExecConfig, TargetType
from chronoflow_contracts.runs import (
    RunCompleted,
    RunRequested,
    RunStarted,
    RunStatus,
    run_id,
)
from chronoflow_platform.executor.metrics import RunMetrics
from chronoflow_platform.executor.recording import EventRecorder
from chronoflow_platform.executor.runs import RunLedger
from chronoflow_platform.executor.testing import one_off_definition, retry_policy, run_request


@pytest.fixture(autouse=True)
async def empty_work_queue(js: JetStreamContext) -> AsyncIterator[None]:
    """Retries these tests line up must not reach another test's consumer."""
    yield
    await js.purge_stream(names.WORK_STREAM)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def ledger(nc: NatsClient, js: JetStreamContext, registry: CollectorRegistry) -> RunLedger:
    metrics = RunMetrics.register(registry, "message", duration_help="test")
    return RunLedger(js=js, recorder=EventRecorder(nc, js), metrics=metrics)


def request(attempts: int = 3) -> RunRequested:
    definition = one_off_definition(
        TargetType.MESSAGE,
        "ledger test",
        channel_id="ch",
        message_template="oi",
        recipients=["+5511999990001"],
        config=ExecConfig(retry=retry_policy(attempts=attempts, delay_ms=60_000)),
    )
    return run_request(definition)


async def history(js: JetStreamContext, chrono_id: str) -> list[Event]:
    sub = await js.subscribe(names.runs_subject(chrono_id), ordered_consumer=True)
    events: list[Event] = []
    try:
        while True:
            msg = await sub.next_msg(timeout=0.5)
            headers = msg.headers or {}
            event_type, version = headers[names.EVENT_TYPE], int(headers[names.EVENT_VERSION])
            events.append(decode(event_type, version, msg.data))
    except TimeoutError:
        return events
    finally:
        await sub.unsubscribe()


async def stored(js: JetStreamContext, chrono_id: str) -> list[tuple[int, str, str]]:
    """Stream sequence, event type and batch id of each of the chrono's run events."""
    sub = await js.subscribe(names.runs_subject(chrono_id), ordered_consumer=True)
    found: list[tuple[int, str, str]] = []
    try:
        while True:
            msg = await sub.next_msg(timeout=0.5)
            headers = msg.headers or {}
            found.append(
                (
                    msg.metadata.sequence.stream,
                    headers[names.EVENT_TYPE],
                    headers.get("Nats-Batch-Id", ""),
                )
            )
    except TimeoutError:
        return found
    finally:
        await sub.unsubscribe()


async def test_a_fast_attempt_stores_both_events_together_in_order(
    js: JetStreamContext, ledger: RunLedger
) -> None:
    first = request()
    run = ledger.open(first)
    # Closed while RunStarted still lingers in the recorder, as after a fast webhook.
    await ledger.close(run, run.finish(), status=RunStatus.SUCCESS, due=None)
    [(seq_started, started, batch), (seq_completed, completed, other_batch)] = await stored(
        js, first.chrono_id
    )
    assert (started, completed) == (RunStarted.TYPE, RunCompleted.TYPE)
    assert seq_completed == seq_started + 1
    # Two are too few for an atomic batch: plain publishes, RunCompleted once RunStarted is in
    # (a group in an atomic batch: test_executor_recording).
    assert (batch, other_batch) == ("", "")


async def test_waiting_for_run_started_does_not_wait_for_the_linger(
    nc: NatsClient, js: JetStreamContext, registry: CollectorRegistry
) -> None:
    metrics = RunMetrics.register(registry, "message", duration_help="test")
    recorder = EventRecorder(nc, js, linger=3600)
    ledger = RunLedger(js=js, recorder=recorder, metrics=metrics)
    first = request()
    run = ledger.open(first)
    # Bounded only so that waiting out the hour-long linger fails instead of hanging.
    await asyncio.wait_for(run.wait_started(), 30)
    [(seq, event_type, _)] = await stored(js, first.chrono_id)
    assert (seq, event_type) == (run.started.result().seq, RunStarted.TYPE)
    await recorder.close()


async def test_an_attempt_closed_while_run_started_is_being_stored_follows_it(
    js: JetStreamContext, ledger: RunLedger
) -> None:
    first = request()
    run = ledger.open(first)
    waiting = asyncio.create_task(run.wait_started())
    # Two turns: wait_started asks for the flush, then the flush takes RunStarted into a batch.
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not run.started.done()
    await ledger.close(run, run.finish(), status=RunStatus.SUCCESS, due=None)
    await waiting
    [(seq_started, started, batch), (seq_completed, completed, other_batch)] = await stored(
        js, first.chrono_id
    )
    assert (started, completed) == (RunStarted.TYPE, RunCompleted.TYPE)
    assert seq_completed > seq_started
    assert (batch, other_batch) == ("", "")  # each alone, RunCompleted once RunStarted was in


async def test_a_redelivery_after_only_run_started_was_stored_completes_the_history(
    js: JetStreamContext, ledger: RunLedger, registry: CollectorRegistry
) -> None:
    first = request()
    crashed = ledger.open(first)
    await crashed.wait_started()
    # The redelivery's RunStarted is a duplicate in the batch with its RunCompleted: the
    # batch is refused whole and its events are stored one by one, in order.
    again = ledger.open(first)
    completed = await ledger.close(again, again.finish(), status=RunStatus.SUCCESS, due=None)
    events = await history(js, first.chrono_id)
    assert [type(e) for e in events] == [RunStarted, RunCompleted]
    assert events[1] == completed
    counted = registry.get_sample_value(
        "chronoflow_runs_total", {"target": "message", "status": "SUCCESS"}
    )
    assert counted == 1.0


async def test_a_retry_waits_as_a_schedule_and_a_redelivery_follows_the_first_outcome(
    js: JetStreamContext, ledger: RunLedger, registry: CollectorRegistry
) -> None:
    first = request()
    run = ledger.open(first)
    await run.wait_started()
    finished = run.finish()
    due = finished.at + timedelta(minutes=1)
    completed = await ledger.close(
        run,
        finished,
        status=RunStatus.FAILED,
        due=due,
        result={"sent": 0},
        error_message="rate limited",
        carry_result=True,
    )
    assert completed.will_retry
    assert completed.result == {"sent": 0, "nextAttemptAt": due.isoformat()}

    # The same attempt again (a redelivery) ending differently: history keeps the first.
    again = ledger.open(first)
    again_completed = await ledger.close(again, again.finish(), status=RunStatus.SUCCESS, due=None)
    assert again_completed.event_id == completed.event_id
    assert again_completed.will_retry

    events = await history(js, first.chrono_id)
    assert [type(e) for e in events] == [RunStarted, RunCompleted]
    counted = registry.get_sample_value(
        "chronoflow_runs_total", {"target": "message", "status": "FAILED"}
    )
    assert counted == 1.0

    following_id = run_id(first.occurrence_id, 2)
    raw = await js.get_msg(
        names.WORK_STREAM, subject=names.work_retry_subject("message", following_id)
    )
    headers = raw.headers or {}
    assert headers[names.SCHEDULE_TARGET] == names.work_subject("message")
    assert headers[names.SCHEDULE].startswith("@at ")
    retry = RunRequested.model_validate_json(raw.data or b"")
    assert (retry.attempt, retry.run_id, retry.causation_id) == (
        2,
        following_id,
        completed.event_id,
    )
    assert retry.carried_result == completed.result
    retried = registry.get_sample_value("chronoflow_run_retries_total", {"target": "message"})
    assert retried == 1.0


async def test_a_retry_already_due_goes_straight_to_the_queue(
    js: JetStreamContext, ledger: RunLedger
) -> None:
    first = request()
    run = ledger.open(first)
    finished = run.finish()
    await ledger.close(run, finished, status=RunStatus.TIMEOUT, due=utc_now())
    raw = await js.get_msg(names.WORK_STREAM, subject=names.work_subject("message"))
    retry = RunRequested.model_validate_json(raw.data or b"")
    assert retry.attempt == 2
    assert retry.carried_result is None


async def test_giving_up_records_a_clipped_final_failure(
    js: JetStreamContext, ledger: RunLedger
) -> None:
    first = request()
    await ledger.give_up(first, "x" * 900)
    [event] = await history(js, first.chrono_id)
    assert isinstance(event, RunCompleted)
    assert (event.status, event.will_retry, event.duration_ms) == (RunStatus.FAILED, False, 0)
    assert len(event.error_message or "") == 500
