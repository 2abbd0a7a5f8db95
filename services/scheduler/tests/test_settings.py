"""The scheduler's settings refuse combinations that cannot work, naming the variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chronoflow_scheduler.settings import SchedulerSettings


def test_the_release_ahead_defaults_inside_the_lead() -> None:
    settings = SchedulerSettings.model_validate({})
    assert 0 < settings.release_ahead_seconds < settings.fire_lead_seconds


@pytest.mark.parametrize("ahead", [5, 8])
def test_a_release_ahead_not_inside_the_lead_is_refused(ahead: int) -> None:
    with pytest.raises(ValidationError) as refused:
        SchedulerSettings.model_validate(
            {"SCHEDULER_FIRE_LEAD_SECONDS": 5, "SCHEDULER_RELEASE_AHEAD_SECONDS": ahead}
        )
    assert "SCHEDULER_RELEASE_AHEAD_SECONDS must be less than SCHEDULER_FIRE_LEAD_SECONDS" in str(
        refused.value
    )


def test_releasing_at_the_instant_is_allowed() -> None:
    settings = SchedulerSettings.model_validate(
        {"SCHEDULER_FIRE_LEAD_SECONDS": 1, "SCHEDULER_RELEASE_AHEAD_SECONDS": 0}
    )
    assert settings.release_ahead_seconds == 0
