"""The stream sequence a fire is known by, read from its reply subject as nats-py reads it."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg
from nats.errors import NotJSMessageError

from chronoflow_contracts import names
from chronoflow_platform.delivery import stream_sequence_of


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.CF_SCHEDULES.scheduler-fire.1.12345.678.1796547711000000000.2000",
        "$JS.ACK.CF_SCHEDULES.scheduler-fire.3.9.678.1796547711000000000.0",
        "$JS.ACK.hub.ACCHASH.CF_SCHEDULES.scheduler-fire.2.12345.678.1796547711000000000.41",
        "$JS.ACK.hub.ACCHASH.CF_SCHEDULES.scheduler-fire.7.77.6.1796547711000000000.9.tok",
        "$JS.ACK._.ACCHASH.CF_SCHEDULES.scheduler-fire.1.5.6.1796547711000000000.0.tok.more",
    ],
)
def test_the_stream_sequence_is_read_from_the_reply_subject_as_nats_py_reads_it(
    reply: str,
) -> None:
    meta = Msg(None, subject=names.schedule_fired_subject("c1"), reply=reply).metadata  # type: ignore[arg-type]
    assert stream_sequence_of(Msg(None, reply=reply)) == meta.sequence.stream  # type: ignore[arg-type]


@pytest.mark.parametrize("reply", ["", "_INBOX.abc", "$JS.ACK.too.short", "$JS.API.X.a.1.2.3.4.5"])
def test_a_message_not_from_jetstream_has_no_stream_sequence(reply: str) -> None:
    with pytest.raises(NotJSMessageError):
        stream_sequence_of(Msg(None, reply=reply))  # type: ignore[arg-type]
