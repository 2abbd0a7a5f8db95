"""The normalized schedule: what a chrono's ``cron`` phrase means, shared by api and scheduler."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, Self

from pydantic import AwareDatetime, ConfigDict, Field, field_validator, model_validator

from chronoflow_contracts.base import CamelModel


class NormalizedSchedule(CamelModel):
    """A schedule reduced to one of three shapes, in the chrono's IANA time zone.

    - one-shot: ``type="once"`` and ``run_at``;
    - calendar: ``type="recurring"`` and ``cron``, matched against local wall-clock time;
    - interval that does not divide a day evenly: ``type="recurring"``, ``every_seconds`` and
      ``anchor``; it fires at ``anchor + k * every_seconds`` for k = 1, 2, ...

    Built only by ``chronoflow_schedule.parse``; everything else reads it and asks
    ``chronoflow_schedule.next_after`` for fire times (that is where the DST rules live).
    """

    # Stored inside events: a newer producer may add fields an older consumer must skip.
    model_config = ConfigDict(extra="ignore")

    type: Literal["once", "recurring"] = Field(description="`once` or `recurring`")
    cron: str | None = Field(
        default=None,
        description=(
            "Canonical cron expression in the chrono's time zone: 5 fields "
            "(minute hour day-of-month month day-of-week, numbers only) or 6 fields with "
            "SECONDS FIRST (croniter `second_at_beginning=True`)."
        ),
    )
    every_seconds: int | None = Field(
        default=None, ge=1, description="Period of an interval schedule, in seconds"
    )
    run_at: AwareDatetime | None = Field(default=None, description="The one-shot instant (UTC)")
    anchor: AwareDatetime | None = Field(
        default=None,
        description="Interval schedules: the creation instant (UTC) the period counts from",
    )
    timezone: str = Field(description="IANA time zone name, e.g. `America/Sao_Paulo`")
    description: str = Field(description="Human description, in `language`")
    language: Literal["en", "pt"] = Field(
        default="en", description="Language the phrase was written in (neutral forms: `en`)"
    )

    @field_validator("run_at", "anchor")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        # One spelling per instant keeps events byte-stable and comparisons trivial.
        return None if value is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _one_shape(self) -> Self:
        if self.type == "once":
            if self.run_at is None or self.cron is not None or self.every_seconds is not None:
                raise ValueError("a `once` schedule has runAt and neither cron nor everySeconds")
        elif (self.cron is None) == (self.every_seconds is None):
            raise ValueError("a `recurring` schedule has exactly one of cron and everySeconds")
        elif self.every_seconds is not None and self.anchor is None:
            raise ValueError("an everySeconds schedule needs its anchor")
        return self
