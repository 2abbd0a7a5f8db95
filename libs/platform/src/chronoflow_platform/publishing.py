"""The one way ChronoFlow puts an event on JetStream: message id, type/version and trace headers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import APIError

from chronoflow_contracts import Event, encode, names
from chronoflow_platform.telemetry import inject

#: The smallest batch worth writing as one JetStream atomic batch. nats-server (2.15) stages
#: every atomic batch in a file store of its own (a directory, a metadata file synced to
#: disk, then removed): 2.3-2.5 ms of its CPU for 2 messages, 2.1-2.4 ms for 10, 3-4 ms for
#: 100, while plain publishes cost it 0.36-0.42 ms alone and 0.08-0.14 ms each among a few
#: dozen, and the publisher a PubAck each. Counting both sides, plain publishes are cheaper up
#: to about 10 messages and an atomic batch from about 20 (``bench/bench_jetstream_writes.py``
#: on a 2-core box with ``sync_interval: always``, docs/benchmarks.md). Smaller batches go
#: out as concurrent plain publishes.
ATOMIC_MIN_BATCH = 16

#: JetStream's error codes of atomic batch publishing.
ATOMIC_DISABLED = 10174
BATCH_DUPLICATE_ID = 10201

_BATCH_ID = "Nats-Batch-Id"
_BATCH_SEQUENCE = "Nats-Batch-Sequence"
_BATCH_COMMIT = "Nats-Batch-Commit"

#: One message to store: subject, body, headers.
Message = tuple[str, bytes, dict[str, str]]


def event_headers(
    event: Event,
    *,
    msg_id: str | None = None,
    expected_last_subject_sequence: int | None = None,
) -> dict[str, str]:
    """Headers for an event: dedup id, schema identity, W3C trace context and, when given, the
    optimistic-concurrency condition (see :func:`publish_event`)."""
    headers = inject(
        {
            names.MSG_ID: msg_id or event.event_id,
            names.EVENT_TYPE: event.TYPE,
            names.EVENT_VERSION: str(event.VERSION),
        }
    )
    if expected_last_subject_sequence is not None:
        headers[names.EXPECTED_LAST_SUBJECT_SEQUENCE] = str(expected_last_subject_sequence)
    return headers


async def publish_event(
    js: JetStreamContext,
    subject: str,
    event: Event,
    *,
    msg_id: str | None = None,
    expected_last_subject_sequence: int | None = None,
    extra_headers: dict[str, str] | None = None,
    ack_timeout: float | None = None,
) -> PubAck:
    """Append ``event`` to ``subject`` and wait for JetStream's acknowledgement.

    ``expected_last_subject_sequence`` gives optimistic concurrency: JetStream refuses the
    append (error code 10071) if another event reached the subject first. ``0`` means "the
    subject must be empty" (a create).
    """
    headers = event_headers(
        event, msg_id=msg_id, expected_last_subject_sequence=expected_last_subject_sequence
    )
    if extra_headers:
        headers.update(extra_headers)
    return await js.publish(subject, encode(event), headers=headers, timeout=ack_timeout)


async def commit_atomic(nc: NatsClient, messages: Sequence[Message], *, ack_timeout: float) -> int:
    """Store ``messages`` (at least one, all on one stream) as one JetStream atomic batch: all
    or none, one disk sync. Returns the stream sequence of the last; raises ``APIError`` when
    the server refuses the batch (a duplicate id in it, a failed expectation, batches
    disabled), and nothing of it is stored then."""
    batch_id = uuid.uuid4().hex
    for number, (subject, body, headers) in enumerate(messages[:-1], start=1):
        await nc.publish(
            subject, body, headers={**headers, _BATCH_ID: batch_id, _BATCH_SEQUENCE: str(number)}
        )
    subject, body, headers = messages[-1]
    commit = {_BATCH_ID: batch_id, _BATCH_SEQUENCE: str(len(messages)), _BATCH_COMMIT: "1"}
    reply = await nc.request(subject, body, headers={**headers, **commit}, timeout=ack_timeout)
    answer = json.loads(reply.data)
    if "error" in answer:
        raise APIError.from_error(answer["error"])
    return int(answer["seq"])
