"""What a matched phrase means, before it becomes a NormalizedSchedule."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from chronoflow_schedule.cronspec import CronSpec

Language = Literal["en", "pt"]


@dataclass(frozen=True, slots=True)
class Context:
    """What a phrase is read against: the chrono's zone and the creation instant (UTC)."""

    phrase: str  # as the user wrote it, for error messages
    tz: ZoneInfo
    now: datetime


@dataclass(frozen=True, slots=True)
class Calendar:
    """Recurring on the local wall clock."""

    spec: CronSpec


@dataclass(frozen=True, slots=True)
class Every:
    """A fixed period; aligned to local midnight or anchored, decided by the parser."""

    seconds: int


@dataclass(frozen=True, slots=True)
class Once:
    """One instant (UTC)."""

    at: datetime


Meaning = Calendar | Every | Once

#: The named groups of a matched pattern.
Groups = Mapping[str, str | None]
#: What a pattern means, given its groups and the context.
Handler = Callable[[Groups, Context], Meaning]
