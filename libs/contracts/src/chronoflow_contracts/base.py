"""The event envelope every contract shares, and the camelCase JSON convention."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field
from pydantic.alias_generators import to_camel


def utc_now() -> datetime:
    """The current instant, always timezone-aware."""
    return datetime.now(UTC)


def new_id() -> str:
    """A sortable, server-generated id (UUIDv7: time-ordered, so indexes stay append-mostly)."""
    # Python 3.11 has no uuid.uuid7. RFC 9562 layout: 48-bit ms timestamp, version 7, 12
    # random bits, variant 10, 62 random bits. Written straight as text: going through a
    # 128-bit int and uuid.UUID cost an executor ~2.5 us per event, twice per run.
    ms = f"{(time.time_ns() // 1_000_000) & _MS_MASK:012x}"
    # The random bits come from os.urandom for every id (a getrandom call, ~0.4 us), not from
    # the random module: ids reach users (chronos, runs, events) and Mersenne Twister output
    # can be predicted from earlier ids; a pooled buffer would need care across fork() and
    # threads for a fraction of a microsecond.
    rand = os.urandom(10).hex()
    return f"{ms[:8]}-{ms[8:]}-7{rand[:3]}-{_VARIANT[rand[3]]}{rand[4:7]}-{rand[7:19]}"


_MS_MASK = (1 << 48) - 1
#: A random hex digit with its top two bits set to the RFC 9562 variant (0b10).
_VARIANT = {digit: "89ab"[int(digit, 16) & 0b11] for digit in "0123456789abcdef"}


class CamelModel(BaseModel):
    """JSON in camelCase (as the original API), Python in snake_case; immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
    )


class Event(CamelModel):
    """Envelope of every event. ``type`` and ``version`` identify the schema, never a class path.

    Adding an optional field keeps ``version``; a rename, removal or type change is a new
    version plus an upcaster in :mod:`chronoflow_contracts.registry`.
    """

    # Consumers must tolerate fields added later by newer producers.
    model_config = ConfigDict(extra="ignore")

    TYPE: ClassVar[str]
    VERSION: ClassVar[int]

    event_id: str = Field(default_factory=new_id)
    occurred_at: AwareDatetime = Field(default_factory=utc_now)
    correlation_id: str | None = None
    causation_id: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def type(self) -> str:
        """The stable dotted type name, e.g. ``chrono.created``."""
        return self.TYPE

    @computed_field  # type: ignore[prop-decorator]
    @property
    def version(self) -> int:
        """The schema version of this event type."""
        return self.VERSION
