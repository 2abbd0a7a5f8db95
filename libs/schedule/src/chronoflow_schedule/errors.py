"""The two errors a schedule can fail with, and the list of accepted forms they carry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class AcceptedForm:
    """One family of phrases the parser accepts, with examples (English and Portuguese)."""

    name: str
    examples: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.name}: " + ", ".join(f"'{e}'" for e in self.examples)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready shape for an API error body."""
        return {"form": self.name, "examples": list(self.examples)}


ACCEPTED_FORMS: Final[tuple[AcceptedForm, ...]] = (
    AcceptedForm(
        "One-shot, relative",
        ("in 10 min", "in 2h", "in 1 hour 30 minutes", "em 10 minutos", "daqui a 2 horas"),
    ),
    AcceptedForm(
        "One-shot, absolute",
        (
            "2026-12-01T09:00:00-03:00",
            "at 2026-12-01 09:00",
            "on december 1 at 9am",
            "tomorrow at 9:00",
            "today at 18:00",
            "amanhã às 9h",
            "hoje às 18h",
            "em 25 de dezembro de 2026 às 9h",
            "01/12/2026 às 9h",
        ),
    ),
    AcceptedForm(
        "Interval (a bare duration means every)",
        (
            "6h",
            "15m",
            "30 min",
            "every 15 minutes",
            "every 2 hours",
            "hourly",
            "a cada 15 minutos",
            "de 6 em 6 horas",
            "de hora em hora",
        ),
    ),
    AcceptedForm(
        "Daily",
        ("daily at 07:30", "every day at 7:30am", "todo dia às 8h", "todos os dias às 8h30"),
    ),
    AcceptedForm(
        "Weekly",
        (
            "every monday at 09:00",
            "every mon, wed and fri at 9am",
            "weekdays at 18:00",
            "weekends at 10:00",
            "toda segunda às 9h",
            "de segunda a sexta às 8h",
            "dias úteis às 18h",
            "fins de semana às 10h",
        ),
    ),
    AcceptedForm(
        "Monthly",
        (
            "monthly on the 1st at 08:00",
            "every month on day 15 at 12:00",
            "todo dia 5 às 10h",
            "todo mês no dia 10 às 9h",
        ),
    ),
    AcceptedForm(
        "Yearly",
        ("every year on december 25 at 09:00", "todo ano em 25 de dezembro às 9h"),
    ),
    AcceptedForm(
        "Cron (5 fields, or 6 with seconds first; macros)",
        ("0 9 * * 1-5", "*/15 * * * *", "30 0 9 * * mon-fri", "@hourly", "@daily", "@weekly"),
    ),
)

_FORMS_TEXT: Final = " Accepted forms: " + "; ".join(str(f) for f in ACCEPTED_FORMS) + "."

#: Times of day are written ``08:00``, ``8:00``, ``8h``, ``8h30``, ``8am``, ``7:30pm``, ``noon``.
TIME_HINT: Final = "write the time as 08:00, 8h, 8h30, 8am or 7:30pm"


class ScheduleError(ValueError):
    """The ``cron`` phrase is not a schedule ChronoFlow accepts (never a best guess).

    ``accepted`` lists the accepted forms with examples, so an API can return them in its
    422 body; ``reason`` is the specific problem, without the list.
    """

    field: Final = "cron"

    def __init__(self, reason: str, *, list_forms: bool = False) -> None:
        self.reason = reason
        self.accepted: tuple[AcceptedForm, ...] = ACCEPTED_FORMS
        message = reason
        if list_forms:
            message += _FORMS_TEXT
        super().__init__(message)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready shape: field, message and the accepted forms."""
        return {
            "field": self.field,
            "message": str(self),
            "accepted": [f.as_dict() for f in self.accepted],
        }


class TimezoneError(ValueError):
    """The ``timezone`` is not an IANA time zone name."""

    field: Final = "timezone"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"Unknown time zone {quote(name)}: timezone must be an IANA time zone name such as "
            "'America/Sao_Paulo', 'Europe/Berlin' or 'UTC'."
        )

    def as_dict(self) -> dict[str, object]:
        """JSON-ready shape: field and message."""
        return {"field": self.field, "message": str(self)}


def quote(text: str, limit: int = 60) -> str:
    """The user's text, shortened and quoted, for an error message."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return repr(text)
