"""The projector's shortcuts in reading a message: the stream sequence straight from the reply
subject, and a body of the latest version parsed and validated in one pass. Both must read
exactly what the general path (Msg.metadata, chronoflow_contracts.decode) reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from chronoflow_api.projector.consumer import decode_body, stream_seq
from chronoflow_contracts import UnknownEventError, decode

# One sample body of every event type and version, kept with the contracts.
GOLDEN = Path(__file__).parents[3] / "libs" / "contracts" / "tests" / "golden"
SAMPLES = sorted(GOLDEN.glob("*.json"))


def test_there_are_samples_to_read() -> None:
    assert len(SAMPLES) >= 18


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_a_body_decodes_to_what_the_registry_decodes(path: Path) -> None:
    event_type, version = path.name.removesuffix(".json").rsplit(".v", 1)
    body = path.read_bytes()
    assert decode_body(event_type, int(version), body) == decode(event_type, int(version), body)


def test_an_unknown_version_is_refused_as_the_registry_refuses_it() -> None:
    body = (GOLDEN / "run.started.v1.json").read_bytes()
    with pytest.raises(UnknownEventError):
        decode_body("run.started", 2, body)


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.CF_RUNS.projector.1.4711.42.1764979200000000000.9",
        "$JS.ACK._.ABCHASH.CF_RUNS.projector.2.4711.42.1764979200000000000.9",
        "$JS.ACK.hub.ABCHASH.CF_RUNS.projector.2.4711.42.1764979200000000000.9.xyz",
    ],
)
async def test_the_stream_sequence_is_the_one_metadata_reads(nc: NatsClient, reply: str) -> None:
    msg = Msg(_client=nc, subject="cf.runs.x", reply=reply)
    assert stream_seq(msg) == msg.metadata.sequence.stream == 4711
