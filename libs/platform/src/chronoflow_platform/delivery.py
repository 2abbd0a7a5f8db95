"""What a JetStream delivery's reply subject says: which delivery, the stream sequence, the
backlog.

nats-py's ``msg.metadata`` parses the whole reply subject into frozen dataclasses and a
datetime (~5 us a message) when a consumer needs one or two of its numbers. These read them
straight from the subject's tokens; subjects of another shape go through ``msg.metadata``,
which raises for a message that did not come from JetStream.
"""

from __future__ import annotations

from typing import NamedTuple

from nats.aio.msg import Msg

#: Tokens of a JetStream reply subject without a domain, and at least with one.
_V1_TOKENS = 9
_V2_TOKENS = 11


class Delivery(NamedTuple):
    """What the handler needs to know of a JetStream delivery."""

    #: Which delivery of the message this is (1: the first).
    number: int
    #: Messages left for the consumer after this one.
    pending: int


def _ack_tokens(msg: Msg) -> tuple[list[str], int] | None:
    """The reply subject's tokens and where its numbers start (None: not a known shape).

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ns>.<pending>``, or
    with a domain ``$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<stream seq>
    .<consumer seq>.<ns>.<pending>[.<token>]``: the numbers sit two tokens further right.
    """
    tokens = (msg.reply or "").split(".")
    if tokens[:2] == ["$JS", "ACK"]:
        if len(tokens) == _V1_TOKENS:
            return tokens, 0
        if len(tokens) >= _V2_TOKENS:
            return tokens, 2
    return None


def delivery_of(msg: Msg) -> Delivery:
    """Which delivery this is, and the backlog, read from the message's JetStream reply subject."""
    parsed = _ack_tokens(msg)
    if parsed is not None:
        tokens, shift = parsed
        return Delivery(int(tokens[4 + shift]), int(tokens[8 + shift]))
    meta = msg.metadata
    return Delivery(meta.num_delivered, meta.num_pending)


def stream_sequence_of(msg: Msg) -> int:
    """The message's sequence in its stream, read from its JetStream reply subject."""
    parsed = _ack_tokens(msg)
    if parsed is not None:
        tokens, shift = parsed
        return int(tokens[5 + shift])
    return msg.metadata.sequence.stream
