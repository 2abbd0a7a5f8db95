"""The run ledger against a real nats-server: events in order, the first recorded outcome wins,
retries wait in CF_WORK as ``@at`` schedules (carrying the result when asked), give-ups."""

from __future__ import annotations

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
