"""Every NATS stream, subject, durable consumer and header name ChronoFlow uses, in one place.

Nothing else in the code base spells a subject: services call the builders below. The layout:

- ``CF_EVENTS`` (limits retention, file storage) is the event store, the source of truth.
  One subject per aggregate, so ``Nats-Expected-Last-Subject-Sequence`` gives optimistic
  concurrency per chrono, channel or function: ``cf.events.<kind>.<id>``.
- ``CF_RUNS`` (limits retention) records what happened to runs and schedules:
  ``cf.runs.<chrono_id>``. Kept apart from ``CF_EVENTS`` so that run bookkeeping never moves a
  chrono's version (a client's PATCH must not conflict with the scheduler's work).
- ``CF_WORK`` (work-queue retention) holds ``RunRequested`` for each executor:
  ``cf.work.<target>``; one durable pull consumer per target type, shared by its replicas.
  Message schedules are allowed there: an executor's next attempt is an ``@at`` message on
  ``cf.work.retry.<target>.<run_id>`` that nats-server moves to ``cf.work.<target>`` when due
  (no consumer reads the ``retry`` subjects themselves).
- ``CF_SCHEDULES`` (limits retention, message schedules allowed, one message per subject) holds
  exactly one delayed message per active chrono on ``cf.schedules.chrono.<id>``; when it fires,
  nats-server writes it to ``cf.schedules.fired.<id>``, which the scheduler consumes.
  Interest retention is never used here: it loses schedules.
"""

from __future__ import annotations

from typing import Final, Literal

TargetKind = Literal["http", "message", "function"]
AggregateKind = Literal["chrono", "channel", "function"]

# Streams
EVENTS_STREAM: Final = "CF_EVENTS"
RUNS_STREAM: Final = "CF_RUNS"
WORK_STREAM: Final = "CF_WORK"
SCHEDULES_STREAM: Final = "CF_SCHEDULES"

EVENTS_SUBJECTS: Final = "cf.events.>"
RUNS_SUBJECTS: Final = "cf.runs.>"
WORK_SUBJECTS: Final = "cf.work.>"
SCHEDULES_SUBJECTS: Final = "cf.schedules.>"
SCHEDULE_FIRED_FILTER: Final = "cf.schedules.fired.>"

# Durable consumers
PROJECTOR_DURABLE: Final = "projector"
SCHEDULER_FIRE_DURABLE: Final = "scheduler-fire"
SCHEDULER_EVENTS_DURABLE: Final = "scheduler-events"
EXECUTOR_DURABLES: Final[dict[TargetKind, str]] = {
    "http": "executor-http",
    "message": "executor-message",
    "function": "executor-function",
}

# Core NATS (not persisted)
#: executor-message (and ``ctx.message``) ask the waha-gateway to send one text:
#: request/reply, bodies ``chronoflow_contracts.waha.WahaSendRequest`` / ``WahaSendReply``.
WAHA_SEND_SUBJECT: Final = "cf.rpc.waha.send"
#: The queue group the waha-gateway answers ``WAHA_SEND_SUBJECT`` in.
WAHA_GATEWAY_QUEUE: Final = "waha-gateway"
#: The api asks executor-function to run a saved function once, now (``POST
#: /functions/{id}/test``): request/reply, served by a queue group of every replica
#: (``EXECUTOR_DURABLES["function"]``). Nothing is scheduled, persisted or recorded.
FUNCTION_TEST_SUBJECT: Final = "cf.rpc.function.test"
#: The projector announces ``{"stream": …, "seq": …}`` here after each commit, so the api can
#: answer a write once the read model shows it (read-your-writes) without polling Postgres.
PROJECTION_APPLIED_SUBJECT: Final = "cf.projector.applied"

# Key-value buckets
#: The waha-gateway's record of texts it sent, by idempotency key (executor-message uses
#: occurrence + chat id), so a redelivered or retried run does not send a text twice.
WAHA_SENT_BUCKET: Final = "cf_waha_sent"

# Headers
MSG_ID: Final = "Nats-Msg-Id"
EXPECTED_LAST_SUBJECT_SEQUENCE: Final = "Nats-Expected-Last-Subject-Sequence"
SCHEDULE: Final = "Nats-Schedule"
SCHEDULE_TARGET: Final = "Nats-Schedule-Target"
EVENT_TYPE: Final = "CF-Event-Type"
EVENT_VERSION: Final = "CF-Event-Version"
DUE_AT: Final = "CF-Due-At"
TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
#: A span context to link to rather than continue (W3C ``traceparent`` format): a recurring
#: chrono's next schedule message carries the previous fire's, so each occurrence starts its
#: own trace instead of growing one without end.
TRACE_LINK: Final = "CF-Trace-Link"


def aggregate_subject(kind: AggregateKind, aggregate_id: str) -> str:
    """The event-store subject of one aggregate."""
    return f"cf.events.{kind}.{_token(aggregate_id)}"


def aggregate_filter(kind: AggregateKind) -> str:
    """Every event-store subject of one aggregate kind."""
    return f"cf.events.{kind}.*"


def runs_subject(chrono_id: str) -> str:
    """Where the run and schedule bookkeeping of one chrono is recorded."""
    return f"cf.runs.{_token(chrono_id)}"


def work_subject(target: TargetKind) -> str:
    """The queue an executor consumes."""
    return f"cf.work.{target}"


def work_retry_subject(target: TargetKind, run_id: str) -> str:
    """Where a retry waits, as an ``@at`` schedule targeting :func:`work_subject` (same stream)."""
    return f"cf.work.retry.{target}.{_token(run_id)}"


def schedule_subject(chrono_id: str) -> str:
    """The subject holding a chrono's single pending schedule message."""
    return f"cf.schedules.chrono.{_token(chrono_id)}"


def schedule_fired_subject(chrono_id: str) -> str:
    """The literal subject a chrono's schedule fires into (same stream, as nats-server requires)."""
    return f"cf.schedules.fired.{_token(chrono_id)}"


def _token(value: str) -> str:
    # Ids are UUIDs; anything that could split or wildcard a subject is refused outright.
    if not value or any(c in value for c in ". *>\t\r\n"):
        raise ValueError(f"not a valid subject token: {value!r}")
    return value
