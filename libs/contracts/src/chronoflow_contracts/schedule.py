"""The normalized schedule shared by the api and the scheduler (stored inside chrono events)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class NormalizedSchedule(BaseModel):
    """What a ``cron`` phrase means, in a form the scheduler can compute fire times from."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    type: Literal["once", "recurring"]
    cron: str | None = None
    every_seconds: int | None = None
    run_at: AwareDatetime | None = None
    anchor: AwareDatetime | None = None
    timezone: str
    description: str
    language: Literal["en", "pt"] = "en"
