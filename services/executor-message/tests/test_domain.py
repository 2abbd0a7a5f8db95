"""The rules of a MESSAGE attempt: who is sent to, how replies land, the verdict, the retry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chronoflow_contracts.chrono import RetryPolicy
from chronoflow_contracts.runs import RunStatus
from chronoflow_contracts.waha import SendErrorCode, WahaSendReply
from chronoflow_executor_message import domain
from chronoflow_executor_message.domain import Delivery, Recipient
from chronoflow_executor_message.testing import message_definition
from chronoflow_platform.executor.rules import next_attempt

A, B, C = "+55 11 99999-0001", "+55 (11) 99999-0002", "120363025000000001@g.us"
A_ID, B_ID, C_ID = "5511999990001@c.us", "5511999990002@c.us", C
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def sent(message_id: str = "true_x_1") -> WahaSendReply:
    return WahaSendReply(ok=True, message_id=message_id, session="default")


def rate_limited(retry_after: float = 2.0) -> WahaSendReply:
    return WahaSendReply(
        ok=False,
        code=SendErrorCode.RATE_LIMITED,
        error="WAHA sendText: HTTP 429: rate limited",
        retryable=True,
        retry_after=retry_after,
        status=429,
    )


def not_working() -> WahaSendReply:
    return WahaSendReply(
        ok=False,
        code=SendErrorCode.SESSION_NOT_WORKING,
        error="WhatsApp session 'default' is SCAN_QR_CODE, not WORKING: scan it",
        session_status="SCAN_QR_CODE",
    )


def test_the_plan_normalizes_dedupes_and_keeps_the_order() -> None:
    planned = domain.plan([A, B, "5511999990001", C, "call me maybe"], None)
    assert [(r.recipient, r.chat_id, r.status) for r in planned] == [
        (A, A_ID, Delivery.PENDING),
        (B, B_ID, Delivery.PENDING),
        (C, C_ID, Delivery.PENDING),
        ("call me maybe", None, Delivery.FAILED),
    ]
    assert planned[-1].settled
    assert planned[-1].error == "not a phone number or WhatsApp chat id"


def test_a_retry_skips_who_got_it_and_who_can_never_get_it() -> None:
    first = [
        Recipient(A, A_ID, Delivery.SENT, message_id="m1", attempt=1),
        Recipient(B, B_ID, Delivery.FAILED, attempt=1, error="429", retryable=True),
        Recipient(C, C_ID, Delivery.FAILED, attempt=1, error="bad group", retryable=False),
    ]
    carried = domain.result(first, channel_id="ch", session="default", next_attempt_at=NOW)
    planned = domain.plan([A, B, C], carried)
    assert planned[0] == first[0]
    assert planned[1] == Recipient(B, B_ID, Delivery.PENDING)
    assert planned[2] == first[2]
    # Garbage in a carried result is ignored, never fatal.
    assert domain.plan([A], {"recipients": [{"nope": 1}, "x", None]}) == [
        Recipient(A, A_ID, Delivery.PENDING)
    ]


def test_replies_land_on_the_recipient() -> None:
    pending = Recipient(A, A_ID, Delivery.PENDING)
    ok = domain.after_reply(pending, sent("m9"), attempt=2)
    assert (ok.status, ok.message_id, ok.attempt, ok.error) == (Delivery.SENT, "m9", 2, None)
    limited = domain.after_reply(pending, rate_limited(), attempt=2)
    assert (limited.status, limited.retryable) == (Delivery.FAILED, True)
    assert limited.as_json() == {
        "recipient": A,
        "chatId": A_ID,
        "status": "FAILED",
        "attempt": 2,
        "error": "WAHA sendText: HTTP 429: rate limited",
        "retryable": True,
    }


@pytest.mark.parametrize(
    ("reply", "stops"),
    [
        (sent(), False),
        (rate_limited(), True),
        (not_working(), True),
        (WahaSendReply(ok=False, code=SendErrorCode.UNKNOWN_CHANNEL, error="x"), True),
        (WahaSendReply(ok=False, code=SendErrorCode.REJECTED, error="x", status=400), False),
        (WahaSendReply(ok=False, code=SendErrorCode.UNAVAILABLE, error="x", status=500), False),
        (WahaSendReply(ok=False, code=SendErrorCode.UNAVAILABLE, error="gateway down"), True),
    ],
)
def test_which_answers_stop_the_attempt(reply: WahaSendReply, stops: bool) -> None:
    assert domain.stops_the_attempt(reply) is stops


def test_everyone_sent_is_success() -> None:
    verdict = domain.judge(
        [Recipient(A, A_ID, Delivery.SENT), Recipient(B, B_ID, Delivery.SENT)], None
    )
    assert (verdict.status, verdict.retryable, verdict.error_message) == (
        RunStatus.SUCCESS,
        False,
        None,
    )


def test_a_rate_limit_is_retryable_and_its_wait_is_a_floor() -> None:
    recipients = [
        Recipient(A, A_ID, Delivery.SENT),
        domain.after_reply(Recipient(B, B_ID, Delivery.PENDING), rate_limited(30), 1),
        Recipient(C, C_ID, Delivery.PENDING),
    ]
    verdict = domain.judge(recipients, rate_limited(30))
    assert verdict.status is RunStatus.FAILED
    assert verdict.retryable
    assert verdict.http_status == 429
    assert verdict.error_message == (
        "2 of 3 recipients did not get the text: WAHA sendText: HTTP 429: rate limited"
    )
    policy = RetryPolicy(attempts=3, backoff="fixed", delay_ms=1000, jitter=False)
    due = next_attempt(verdict, policy, 1, NOW, 0.0)
    assert due == NOW + timedelta(seconds=30)
    # The policy may wait longer than Retry-After, never shorter.
    slow = RetryPolicy(attempts=3, backoff="fixed", delay_ms=45_000, jitter=False)
    assert next_attempt(verdict, slow, 1, NOW, 0.0) == NOW + timedelta(seconds=45)
    # The last attempt has no next one.
    assert next_attempt(verdict, policy, 3, NOW, 0.0) is None


def test_a_session_that_does_not_work_fails_the_run_without_retry() -> None:
    recipients = [
        domain.after_reply(Recipient(A, A_ID, Delivery.PENDING), not_working(), 1),
        Recipient(B, B_ID, Delivery.PENDING),
    ]
    verdict = domain.judge(recipients, not_working())
    assert verdict.status is RunStatus.FAILED
    assert not verdict.retryable
    assert verdict.error_message == (
        "2 of 2 recipients did not get the text: "
        "WhatsApp session 'default' is SCAN_QR_CODE, not WORKING: scan it"
    )
    final = domain.finish(recipients, will_retry=False, reason="session down")
    assert [r.status for r in final] == [Delivery.FAILED, Delivery.FAILED]
    assert final[1].error == "not sent: session down"


def test_one_recipient_reads_as_the_reason_itself() -> None:
    recipients = [domain.after_reply(Recipient(A, A_ID, Delivery.PENDING), not_working(), 1)]
    verdict = domain.judge(recipients, not_working())
    assert verdict.error_message == not_working().error


def test_a_rejected_recipient_does_not_make_the_run_retry() -> None:
    rejected = WahaSendReply(
        ok=False, code=SendErrorCode.REJECTED, error="HTTP 400: bad chat", status=400
    )
    recipients = [
        Recipient(A, A_ID, Delivery.SENT),
        domain.after_reply(Recipient(B, B_ID, Delivery.PENDING), rejected, 1),
    ]
    verdict = domain.judge(recipients, None)
    assert verdict.status is RunStatus.FAILED
    assert not verdict.retryable
    assert verdict.error_message == (
        f"1 of 2 recipients did not get the text: {B_ID}: HTTP 400: bad chat"
    )


def test_the_result_counts_and_lists_everyone() -> None:
    recipients = [
        Recipient(A, A_ID, Delivery.SENT, message_id="m1", attempt=1),
        Recipient(B, B_ID, Delivery.PENDING),
    ]
    body = domain.result(recipients, channel_id="ch", session="default", next_attempt_at=NOW)
    assert body == {
        "channelId": "ch",
        "session": "default",
        "sent": 1,
        "failed": 0,
        "pending": 1,
        "recipients": [
            {"recipient": A, "chatId": A_ID, "status": "SENT", "messageId": "m1", "attempt": 1},
            {"recipient": B, "chatId": B_ID, "status": "PENDING"},
        ],
        "nextAttemptAt": NOW.isoformat(),
    }


def test_a_definition_without_recipients_or_text_is_named() -> None:
    good = message_definition("ch", [A])
    assert domain.definition_problem(good) is None
    bad = good.model_copy(update={"recipients": [], "message_template": None})
    assert domain.definition_problem(bad) == "the chrono has no messageTemplate and no recipients"


def test_the_idempotency_key_is_per_occurrence_and_chat() -> None:
    assert domain.idempotency_key("occ", A_ID) != domain.idempotency_key("occ", B_ID)
    assert domain.idempotency_key("occ", A_ID) == domain.idempotency_key("occ", A_ID)
