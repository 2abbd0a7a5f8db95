"""publish_event against a real JetStream: headers, dedup by message id, optimistic concurrency."""

from __future__ import annotations

import pytest
from nats.js import JetStreamContext
from nats.js.errors import APIError

from chronoflow_contracts import decode, names, new_id
from chronoflow_contracts.chrono import ChronoPaused, ChronoResumed
from chronoflow_platform.publishing import publish_event


async def test_publish_sets_id_type_and_version_headers(js: JetStreamContext) -> None:
    chrono_id = new_id()
    event = ChronoPaused(chrono_id=chrono_id)
    subject = names.aggregate_subject("chrono", chrono_id)
    ack = await publish_event(js, subject, event)
    msg = await js.get_msg(names.EVENTS_STREAM, ack.seq)
    assert msg.headers is not None
    assert msg.headers[names.MSG_ID] == event.event_id
    assert msg.headers[names.EVENT_TYPE] == "chrono.paused"
    assert msg.headers[names.EVENT_VERSION] == "1"
    assert msg.data is not None
    assert decode("chrono.paused", 1, msg.data) == event


async def test_same_message_id_inside_the_window_is_dropped(js: JetStreamContext) -> None:
    chrono_id = new_id()
    subject = names.aggregate_subject("chrono", chrono_id)
    event = ChronoPaused(chrono_id=chrono_id)
    first = await publish_event(js, subject, event)
    second = await publish_event(js, subject, event)
    assert second.duplicate
    assert second.seq == first.seq


async def test_expected_last_subject_sequence_refuses_a_stale_writer(js: JetStreamContext) -> None:
    chrono_id = new_id()
    subject = names.aggregate_subject("chrono", chrono_id)
    created = await publish_event(
        js, subject, ChronoPaused(chrono_id=chrono_id), expected_last_subject_sequence=0
    )
    await publish_event(
        js,
        subject,
        ChronoResumed(chrono_id=chrono_id),
        expected_last_subject_sequence=created.seq,
    )
    with pytest.raises(APIError) as err:
        await publish_event(
            js,
            subject,
            ChronoPaused(chrono_id=chrono_id),
            expected_last_subject_sequence=created.seq,
        )
    assert err.value.err_code == 10071
