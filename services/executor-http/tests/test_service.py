"""The use case against a real nats-server and a sink on 127.0.0.1: events, idempotency, retries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest
from cryptography.fernet import Fernet
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry

from chronoflow_contracts import Event, decode, names, utc_now
from chronoflow_contracts.runs import (
    RunCompleted,
    RunRequested,
    RunStarted,
    run_id,
    run_request_msg_id,
)
from chronoflow_egress import DEVELOPMENT_ALLOWLIST, EgressPolicy, build_client
from chronoflow_egress.signing import generate_secret, verify
from chronoflow_executor_http.metrics import ExecutorMetrics
from chronoflow_executor_http.service import Limits, WebhookExecutor
from chronoflow_executor_http.testing import (
    WebhookSink,
    http_definition,
    run_request,
    statuses,
)
from chronoflow_platform.executor.recording import EventRecorder
from chronoflow_platform.executor.runs import RunLedger
from chronoflow_platform.header_secrets import HeaderCipher

SECRET = generate_secret()
KEY = Fernet.generate_key().decode()
LIMITS = Limits(
    default_timeout_ms=2000,
    max_response_bytes=1024 * 1024,
    allowed_methods=frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"}),
)


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    async with WebhookSink() as receiver:
        yield receiver


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    policy = EgressPolicy.from_allowlist(DEVELOPMENT_ALLOWLIST, allowlist_permitted=True)
    http = build_client(policy, timeout=2.0)
    yield http
    await http.aclose()


@pytest.fixture(autouse=True)
async def empty_work_queue(js: JetStreamContext) -> AsyncIterator[None]:
    """Retries these tests line up must not fire into a later test's executor."""
    yield
    await js.purge_stream(names.WORK_STREAM)


@pytest.fixture
def ledger(nc: NatsClient, js: JetStreamContext) -> RunLedger:
    metrics = ExecutorMetrics.register(CollectorRegistry())
    return RunLedger(js=js, recorder=EventRecorder(nc, js), metrics=metrics.runs)


@pytest.fixture
def executor(ledger: RunLedger, client: httpx.AsyncClient) -> WebhookExecutor:
    return WebhookExecutor(
        ledger=ledger,
        client=client,
        secrets=[SECRET],
        cipher=HeaderCipher(KEY),
        limits=LIMITS,
        metrics=ExecutorMetrics.register(CollectorRegistry()),
        jitter=lambda: 0.0,
    )


async def recorded(js: JetStreamContext, chrono_id: str) -> list[Event]:
    """Everything on the chrono's runs subject, in order."""
    subject = names.runs_subject(chrono_id)
    info = await js.stream_info(names.RUNS_STREAM, subjects_filter=subject)
    count = (info.state.subjects or {}).get(subject, 0)
    if not count:
        return []
    sub = await js.pull_subscribe(subject, stream=names.RUNS_STREAM)
    msgs = await sub.fetch(count, timeout=5)
    await sub.unsubscribe()
    events = []
    for msg in msgs:
        headers = msg.headers or {}
        events.append(
            decode(headers[names.EVENT_TYPE], int(headers[names.EVENT_VERSION]), msg.data)
        )
    return events


async def waiting_retry(js: JetStreamContext, request: RunRequested) -> RunRequested | None:
    """The next attempt's message waiting as a schedule in CF_WORK, if there is one."""
    following = request.attempt + 1
    subject = names.work_retry_subject("http", run_id(request.occurrence_id, following))
    try:
        raw = await js.get_msg(names.WORK_STREAM, subject=subject)
    except NotFoundError:
        return None
    headers = raw.headers or {}
    assert headers[names.SCHEDULE_TARGET] == names.work_subject("http")
    assert headers[names.SCHEDULE].startswith("@at ")
    assert headers[names.MSG_ID] == run_request_msg_id(
        request.chrono_id, request.scheduled_for, following
    )
    event = decode(RunRequested.TYPE, 1, raw.data or b"")
    assert isinstance(event, RunRequested)
    due = datetime.fromisoformat(headers[names.DUE_AT])
    assert headers[names.SCHEDULE] == "@at " + due.strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{(due.microsecond + 999) // 1000:03d}Z"
    )
    return event


async def test_an_attempt_records_started_then_completed(
    js: JetStreamContext, executor: WebhookExecutor, sink: WebhookSink
) -> None:
    sealed = HeaderCipher(KEY).seal({"X-Api-Key": "k-123"})
    request = run_request(
        http_definition(sink.on("/a", statuses(200)), headers=sealed, payload={"x": 1})
    )
    completed = await executor.execute(request)

    started, done = await recorded(js, request.chrono_id)
    assert isinstance(started, RunStarted)
    assert isinstance(done, RunCompleted)
    assert done == completed
    assert started.run_id == done.run_id == request.run_id
    assert started.causation_id == done.causation_id == request.event_id
    assert started.correlation_id == request.correlation_id
    assert done.status == "SUCCESS"
    assert done.response_snippet == "status 200"
    assert done.result == {"responseBytes": 10, "truncated": False, "redirects": 0}
    [got] = sink.received
    assert got.headers["x-api-key"] == "k-123"
    verify(SECRET, got.headers, got.body)


async def test_a_redelivery_sends_the_same_webhook_id_and_records_nothing_twice(
    js: JetStreamContext, executor: WebhookExecutor, sink: WebhookSink
) -> None:
    request = run_request(http_definition(sink.on("/twice", statuses(200))))
    first = await executor.execute(request)
    second = await executor.execute(request)

    assert second == first  # the recorded outcome, read back
    assert [type(e) for e in await recorded(js, request.chrono_id)] == [RunStarted, RunCompleted]
    assert [r.webhook_id for r in sink.received] == [request.occurrence_id] * 2


async def test_a_redelivery_follows_the_outcome_recorded_first(
    js: JetStreamContext, executor: WebhookExecutor, sink: WebhookSink
) -> None:
    # Delivered twice: 503 (recorded, retry lined up), then 200 on the redelivery. History
    # keeps the first outcome and the retry stays lined up: one story, not two.
    url = sink.on("/flip", statuses(503, 200))
    request = run_request(http_definition(url, attempts=3, delay_ms=60_000))
    first = await executor.execute(request)
    assert first.will_retry
    retry = await waiting_retry(js, request)
    assert retry is not None
    assert retry.attempt == 2
    assert retry.occurrence_id == request.occurrence_id
    assert retry.run_id != request.run_id
    assert retry.causation_id == first.event_id
    assert retry.definition == request.definition

    again = await executor.execute(request)
    assert again == first
    events = await recorded(js, request.chrono_id)
    assert [type(e) for e in events] == [RunStarted, RunCompleted]
    assert await waiting_retry(js, request) == retry  # still exactly the one


async def test_a_redelivery_after_a_success_lines_up_no_retry(
    js: JetStreamContext, executor: WebhookExecutor, sink: WebhookSink
) -> None:
    url = sink.on("/ok-then-down", statuses(200, 503))
    request = run_request(http_definition(url, attempts=3, delay_ms=60_000))
    first = await executor.execute(request)
    again = await executor.execute(request)
    assert again == first
    assert first.status == "SUCCESS"
    assert await waiting_retry(js, request) is None


async def test_the_last_attempt_lines_up_nothing(
    js: JetStreamContext, executor: WebhookExecutor, sink: WebhookSink
) -> None:
    url = sink.on("/down", statuses(503))
    first = run_request(http_definition(url, attempts=2, delay_ms=60_000))
    last = run_request(
        first.definition, chrono_id=first.chrono_id, scheduled_for=first.scheduled_for, attempt=2
    )
    completed = await executor.execute(last)
    assert (completed.status, completed.will_retry) == ("FAILED", False)
    assert await waiting_retry(js, last) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "TRACE"}, "method TRACE is not in ALLOWED_METHODS"),
        ({"url": "ftp://127.0.0.1/x"}, "egress blocked (scheme): 127.0.0.1:80 is not permitted"),
        ({"url": "http://[::1/"}, "invalid request: InvalidURL"),
        ({"url": "http://127.0.0.1:99999/"}, "invalid request: ValueError"),
    ],
)
async def test_requests_that_cannot_be_sent_fail_without_retry(
    executor: WebhookExecutor, sink: WebhookSink, change: dict[str, str], message: str
) -> None:
    definition = http_definition(sink.url("/never"), attempts=3).model_copy(update=change)
    completed = await executor.execute(run_request(definition))
    assert (completed.status, completed.will_retry) == ("FAILED", False)
    assert completed.error_message is not None
    assert completed.error_message.startswith(message)
    assert sink.received == []


async def test_secret_header_values_never_reach_an_error_message(
    ledger: RunLedger,
    client: httpx.AsyncClient,
    executor: WebhookExecutor,
    sink: WebhookSink,
) -> None:
    other = HeaderCipher(Fernet.generate_key().decode()).seal({"Authorization": "Bearer zzz"})
    unreadable = await executor.execute(
        run_request(http_definition(sink.url("/x"), headers=other, attempts=3))
    )
    assert unreadable.error_message == "header 'Authorization' cannot be decrypted with the keys"
    assert not unreadable.will_retry

    keyless = WebhookExecutor(
        ledger=ledger,
        client=client,
        secrets=[SECRET],
        cipher=None,
        limits=LIMITS,
        metrics=ExecutorMetrics.register(CollectorRegistry()),
    )
    sealed = HeaderCipher(KEY).seal({"Authorization": "Bearer zzz"})
    no_key = await keyless.execute(run_request(http_definition(sink.url("/x"), headers=sealed)))
    assert no_key.error_message == (
        "header 'Authorization' is encrypted but CHRONOFLOW_SECRETS_KEY is not set"
    )

    injected = HeaderCipher(KEY).seal({"X-Token": "line\r\nInjected: yes"})
    bad = await executor.execute(run_request(http_definition(sink.url("/x"), headers=injected)))
    assert (bad.status, bad.will_retry) == ("FAILED", False)
    assert bad.error_message is not None
    assert "line" not in bad.error_message
    assert "Injected" not in bad.error_message
    assert sink.received == []


async def test_give_up_records_a_final_failure_once(
    js: JetStreamContext, executor: WebhookExecutor, sink: WebhookSink
) -> None:
    request = run_request(http_definition(sink.url("/x")))
    await executor.give_up(request, "executor error after 5 deliveries: RuntimeError")
    await executor.give_up(request, "again")
    [done] = await recorded(js, request.chrono_id)
    assert isinstance(done, RunCompleted)
    assert (done.status, done.will_retry) == ("FAILED", False)
    assert done.error_message == "executor error after 5 deliveries: RuntimeError"


async def test_a_due_retry_goes_straight_to_the_queue(
    js: JetStreamContext, executor: WebhookExecutor, sink: WebhookSink
) -> None:
    url = sink.on("/now", statuses(500))
    request = run_request(http_definition(url, attempts=2, delay_ms=0))
    before = (await js.stream_info(names.WORK_STREAM)).state.last_seq
    started = utc_now()
    completed = await executor.execute(request)
    assert completed.will_retry
    assert isinstance(completed.result, dict)
    assert datetime.fromisoformat(completed.result["nextAttemptAt"]) - started < timedelta(
        seconds=1
    )
    raw = await js.get_msg(names.WORK_STREAM, subject=names.work_subject("http"))
    assert raw.seq is not None
    assert raw.seq > before
    event = decode(RunRequested.TYPE, 1, raw.data or b"")
    assert isinstance(event, RunRequested)
    assert (event.occurrence_id, event.attempt) == (request.occurrence_id, 2)
    assert await waiting_retry(js, request) is None
