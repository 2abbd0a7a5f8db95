"""The event envelope every contract shares, and the camelCase JSON convention."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field
from pydantic.alias_generators import to_camel


def utc_now() -> datetime:
    """The current instant, always timezone-aware."""
    return datetime.now(UTC)


def new_id() -> str:
    """A sortable, server-generated id (UUIDv7: time-ordered, so indexes stay append-mostly)."""
    return str(_uuid7())


def _uuid7() -> uuid.UUID:
    # Python 3.11 has no uuid.uuid7; RFC 9562 layout: 48-bit ms timestamp, version, 74 random bits.
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


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
