"""Pure rules of the chrono lifecycle: validating input into a definition. No I/O here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from chronoflow_api.errors import ApiError, FieldError
from chronoflow_contracts.chrono import ChronoDefinition, ExecConfig, TargetType
from chronoflow_contracts.recipients import normalize_recipient
from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_schedule import ScheduleError, TimezoneError, next_after, parse


@dataclass(frozen=True)
class Policy:
    """Configuration the rules depend on."""

    default_timezone: str
    allowed_methods: frozenset[str]


class InvalidInputError(ApiError):
    """Several field errors at once, so a client can fix everything in one round."""

    def __init__(self, fields: list[FieldError]) -> None:
        summary = "; ".join(f"{f.field}: {f.message}" for f in fields[:5])
        super().__init__(422, "validation_error", summary, fields=fields)


def _check_url(url: str | None, errors: list[FieldError]) -> None:
    if not url:
        errors.append(FieldError(field="url", message="required for targetType HTTP"))
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        errors.append(
            FieldError(
                field="url",
                message=f"scheme {parts.scheme or '(none)'!r} is not allowed",
                accepted=["http", "https"],
            )
        )
    elif not parts.hostname:
        errors.append(FieldError(field="url", message="has no host"))
    elif parts.username or parts.password:
        errors.append(
            FieldError(field="url", message="credentials in the URL are not accepted; use headers")
        )


def _check_target(
    d: dict[str, Any], policy: Policy, errors: list[FieldError], *, has_function_code: bool
) -> None:
    target = d["target_type"]
    if target == TargetType.HTTP:
        _check_url(d.get("url"), errors)
        method = (d.get("method") or "POST").upper()
        d["method"] = method
        if method not in policy.allowed_methods:
            errors.append(
                FieldError(
                    field="method",
                    message=f"{method} is not allowed",
                    accepted=sorted(policy.allowed_methods),
                )
            )
    elif target == TargetType.MESSAGE:
        if not d.get("channel_id"):
            errors.append(FieldError(field="channelId", message="required for targetType MESSAGE"))
        if not (d.get("message_template") or "").strip():
            errors.append(
                FieldError(field="messageTemplate", message="required for targetType MESSAGE")
            )
        recipients: list[str] = d.get("recipients") or []
        if not recipients:
            errors.append(
                FieldError(field="recipients", message="must list at least one recipient")
            )
        for i, r in enumerate(recipients):
            if normalize_recipient(r) is None:
                errors.append(
                    FieldError(
                        field=f"recipients.{i}",
                        message=f"{r!r} is not a phone number or WhatsApp chat id",
                        accepted=["+5511999999999", "5511999999999@c.us", "<id>@g.us"],
                    )
                )
    elif target == TargetType.FUNCTION and not (d.get("function_id") or has_function_code):
        errors.append(
            FieldError(
                field="functionId",
                message="targetType FUNCTION needs functionId or functionCode",
            )
        )


def parse_schedule(
    cron: str, timezone: str, now: datetime, errors: list[FieldError]
) -> NormalizedSchedule | None:
    """The schedule, or None with the reason appended to ``errors``."""
    try:
        return parse(cron, timezone, now)
    except TimezoneError as exc:
        errors.append(
            FieldError(field="timezone", message=str(exc), accepted=["an IANA time zone name"])
        )
    except ScheduleError as exc:
        errors.append(FieldError(field="cron", message=str(exc), accepted=_accepted_forms(exc)))
    return None


def _accepted_forms(exc: ScheduleError) -> list[str] | None:
    forms: Iterable[Any] | None = getattr(exc, "accepted", None)
    return [str(f) for f in forms] if forms else None


def build_definition(
    fields: dict[str, Any],
    policy: Policy,
    now: datetime,
    *,
    has_function_code: bool = False,
) -> tuple[ChronoDefinition, datetime | None]:
    """Validate a full set of chrono fields; return the definition and its first occurrence.

    Raises :class:`InvalidInputError` listing every bad field.
    """
    errors: list[FieldError] = []
    d = dict(fields)
    d["timezone"] = d.get("timezone") or policy.default_timezone
    schedule = parse_schedule(d["cron"], d["timezone"], now, errors)
    _check_target(d, policy, errors, has_function_code=has_function_code)
    if errors or schedule is None:
        raise InvalidInputError(errors)
    definition = ChronoDefinition(
        name=d["name"],
        description=d.get("description"),
        cron=d["cron"],
        timezone=d["timezone"],
        schedule=schedule,
        target_type=d["target_type"],
        method=d.get("method") if d["target_type"] == TargetType.HTTP else None,
        url=d.get("url"),
        headers=d.get("headers") or {},
        payload=d.get("payload"),
        channel_id=d.get("channel_id"),
        message_template=d.get("message_template"),
        recipients=d.get("recipients") or [],
        function_id=d.get("function_id"),
        extras=d.get("extras") or {},
        config=d.get("config") or ExecConfig(),
        is_active=d.get("is_active", True),
    )
    return definition, next_after(schedule, now)
