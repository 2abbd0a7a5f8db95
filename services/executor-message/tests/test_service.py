"""The executor's use case against real JetStream, with a scripted gateway: pacing waits, the
retry it schedules (and what it carries), and redeliveries that follow the first outcome."""

from __future__ import annotations

import json
from collections.abc import Iterator

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry

from chronoflow_contracts import names
from chronoflow_contracts.runs import RunRequested, RunStatus, run_id
from chronoflow_contracts.waha import SendErrorCode, WahaSendReply, WahaSendRequest
from chronoflow_executor_message.metrics import ExecutorMetrics
from chronoflow_executor_message.service import MessageExecutor
from chronoflow_executor_message.testing import message_definition, run_request
from chronoflow_platform.executor.recording import EventRecorder
from chronoflow_platform.executor.runs import RunLedger

ANA, BETO = "+5511999990001", "+5521988880002"
ANA_ID, BETO_ID = "5511999990001@c.us", "5521988880002@c.us"


class ScriptedGateway:
    """Answers each send with the next scripted reply for its chat (then success)."""

    def __init__(self, script: dict[str, list[WahaSendReply]]) -> None:
        self._script = {chat: iter(replies) for chat, replies in script.items()}
        self.asked: list[WahaSendRequest] = []

    async def send(self, request: WahaSendRequest) -> WahaSendReply:
        self.asked.append(request)
        replies: Iterator[WahaSendReply] = self._script.get(request.chat_id, iter(()))
        return next(
            replies,
            WahaSendReply(ok=True, message_id=f"id-{request.chat_id}", session="default"),
        )


def executor(
    nc: NatsClient, js: JetStreamContext, gateway: ScriptedGateway, slept: list[float]
) -> MessageExecutor:
    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    metrics = ExecutorMetrics.register(CollectorRegistry())
    return MessageExecutor(
        ledger=RunLedger(js=js, recorder=EventRecorder(nc, js), metrics=metrics.runs),
        gateway=gateway,
        metrics=metrics,
        jitter=lambda: 0.0,
        sleep=sleep,
    )


def paced(after: float) -> WahaSendReply:
    return WahaSendReply(
        ok=False, code=SendErrorCode.PACED, error="paced", retryable=True, retry_after=after
    )


async def test_a_full_pacing_queue_is_waited_out_not_failed(
    nc: NatsClient, js: JetStreamContext
) -> None:
    gateway = ScriptedGateway({BETO_ID: [paced(0.5), paced(120)]})
    slept: list[float] = []
    request = run_request(message_definition("ch", [ANA, BETO]))
    completed = await executor(nc, js, gateway, slept).execute(request)
    assert completed.status is RunStatus.SUCCESS
    # Each wait is the gateway's, capped so the question is asked again now and then.
    assert slept == [0.5, 30.0]
    assert [r.chat_id for r in gateway.asked] == [ANA_ID, BETO_ID, BETO_ID, BETO_ID]
    keys = {r.idempotency_key for r in gateway.asked if r.chat_id == BETO_ID}
    assert keys == {f"message:{request.occurrence_id}:{BETO_ID}"}


async def test_a_rate_limit_schedules_a_retry_carrying_who_has_the_text(
    nc: NatsClient, js: JetStreamContext
) -> None:
    limited = WahaSendReply(
        ok=False,
        code=SendErrorCode.RATE_LIMITED,
        error="rate limited",
        retryable=True,
        retry_after=90,
        status=429,
    )
    gateway = ScriptedGateway({BETO_ID: [limited]})
    request = run_request(message_definition("ch", [ANA, BETO], attempts=3))
    completed = await executor(nc, js, gateway, []).execute(request)
    assert completed.status is RunStatus.FAILED
    assert completed.will_retry
    assert completed.http_status == 429

    following_id = run_id(request.occurrence_id, 2)
    stored = await js.get_last_msg(
        names.WORK_STREAM, names.work_retry_subject("message", following_id)
    )
    headers = stored.headers or {}
    assert headers[names.SCHEDULE].startswith("@at ")
    assert headers[names.SCHEDULE_TARGET] == names.work_subject("message")
    following = RunRequested.model_validate(json.loads(stored.data or b"{}"))
    assert following.attempt == 2
    assert following.run_id == following_id
    assert following.carried_result is not None
    carried = {r["chatId"]: r["status"] for r in following.carried_result["recipients"]}
    assert carried == {ANA_ID: "SENT", BETO_ID: "FAILED"}
    # Retry-After (90 s) is the floor of the policy's 100 ms.
    assert (following.scheduled_for, completed.result["nextAttemptAt"]) == (
        request.scheduled_for,
        headers[names.DUE_AT],
    )


async def test_a_redelivered_run_follows_the_outcome_recorded_first(
    nc: NatsClient, js: JetStreamContext
) -> None:
    request = run_request(message_definition("ch", [ANA]))
    first = await executor(nc, js, ScriptedGateway({}), []).execute(request)
    assert first.status is RunStatus.SUCCESS
    refused = WahaSendReply(ok=False, code=SendErrorCode.REJECTED, error="nope", status=400)
    again = await executor(nc, js, ScriptedGateway({ANA_ID: [refused]}), []).execute(request)
    assert again.event_id == first.event_id
    assert again.status is RunStatus.SUCCESS
