"""Use cases: each write validates a command, appends its event, returns the read model's view."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.client import Client as NatsClient
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_api import queries
from chronoflow_api.domain import InvalidInputError, Policy, build_definition
from chronoflow_api.errors import ApiError, FieldError, conflict, not_found
from chronoflow_api.schemas import (
    ChannelCreate,
    ChannelOut,
    ChannelPatch,
    ChronoCreate,
    ChronoOut,
    ChronoPatch,
    FunctionCreate,
    FunctionOut,
    FunctionPatch,
    FunctionTestIn,
    FunctionTestOut,
    TriggerOut,
)
from chronoflow_api.store import EventStore
from chronoflow_contracts import names, new_id, utc_now
from chronoflow_contracts.channels import (
    ChannelCreated,
    ChannelDefinition,
    ChannelDeleted,
    ChannelUpdated,
)
from chronoflow_contracts.chrono import (
    ChronoCreated,
    ChronoDeleted,
    ChronoPaused,
    ChronoResumed,
    ChronoTriggered,
    ChronoUpdated,
    TargetType,
)
from chronoflow_contracts.functions import (
    FunctionDefinition,
    FunctionDeleted,
    FunctionLimits,
    FunctionSaved,
    FunctionTestReply,
    FunctionTestRequest,
    code_checksum,
)
from chronoflow_contracts.runs import occurrence_id, run_id
from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_platform.header_secrets import REDACTED, HeaderCipher
from chronoflow_schedule import next_after

#: How long a function test may wait beyond the function's own timeoutMs: for a free sandbox
#: in a busy executor, and for the round trip.
TEST_REPLY_MARGIN_S = 10.0
_TEST_ERRORS = {"not_found": 404, "invalid": 422}

# Columns of a chrono row that are client-settable fields (the rest is kept by projections).
_DEFINITION_FIELDS = (
    "name",
    "description",
    "cron",
    "timezone",
    "target_type",
    "method",
    "url",
    "headers",
    "payload",
    "channel_id",
    "message_template",
    "recipients",
    "function_id",
    "extras",
    "config",
    "is_active",
)


def _check_version(expected_by_client: int | None, current: int) -> None:
    if expected_by_client is not None and expected_by_client != current:
        raise conflict(
            f"version {expected_by_client} is stale; the current version is {current}", current
        )


@dataclass
class Services:
    """Everything the routes need, built once in the lifespan."""

    engine: AsyncEngine
    store: EventStore
    policy: Policy
    cipher: HeaderCipher

    # --- chronos -------------------------------------------------------------------------

    async def _require_refs(self, fields: dict[str, Any]) -> None:
        errors = []
        channel_id = fields.get("channel_id")
        if channel_id and not await queries.exists(self.engine, "channel", channel_id):
            errors.append(FieldError(field="channelId", message=f"channel {channel_id} not found"))
        function_id = fields.get("function_id")
        if function_id and not await queries.exists(self.engine, "function", function_id):
            errors.append(
                FieldError(field="functionId", message=f"function {function_id} not found")
            )
        if errors:
            raise InvalidInputError(errors)

    async def create_chrono(self, body: ChronoCreate) -> ChronoOut:
        """Validate, save inline function code if any, append ChronoCreated."""
        now = utc_now()
        # Shallow: nested models stay validated instances rather than dicts to validate again.
        fields = {k: v for k, v in body if k not in {"function_code", "function_limits"}}
        definition, next_run = build_definition(
            fields, self.policy, now, has_function_code=body.function_code is not None
        )
        if body.target_type == TargetType.FUNCTION and body.function_code is not None:
            function = await self.create_function(
                FunctionCreate(
                    name=f"{body.name} (inline)",
                    code=body.function_code,
                    limits=body.function_limits or FunctionLimits(),
                    channel_id=body.channel_id,
                )
            )
            definition = definition.model_copy(update={"function_id": function.id})
        else:
            await self._require_refs(fields)
        definition = definition.model_copy(update={"headers": self.cipher.seal(definition.headers)})
        chrono_id = new_id()
        event = ChronoCreated(chrono_id=chrono_id, definition=definition, next_run_at=next_run)
        version = await self.store.append("chrono", chrono_id, event, expected=0)
        return queries.chrono_as_created(event, version)

    async def _read_chrono(self, chrono_id: str) -> ChronoOut:
        chrono = await queries.get_chrono(self.engine, chrono_id)
        if chrono is None:
            raise not_found("chrono", chrono_id)
        return chrono

    async def _current(self, chrono_id: str) -> dict[str, Any]:
        row = await queries.get_chrono_row(self.engine, chrono_id)
        if row is None:
            raise not_found("chrono", chrono_id)
        return row

    async def update_chrono(
        self, chrono_id: str, body: ChronoPatch, if_match: int | None
    ) -> ChronoOut:
        """Merge the patch into the current definition, re-validate it whole, append."""
        row = await self._current(chrono_id)
        _check_version(body.version if body.version is not None else if_match, row["version"])
        patch = body.model_dump(exclude_unset=True, exclude={"version"})
        merged = {k: row[k] for k in _DEFINITION_FIELDS} | patch
        if "headers" in patch:
            # A client echoing a redacted value back means "keep the stored secret".
            merged["headers"] = {
                k: (row["headers"].get(k, v) if v == REDACTED else v)
                for k, v in patch["headers"].items()
            }
        now = utc_now()
        definition, next_run = build_definition(merged, self.policy, now)
        await self._require_refs(merged)
        definition = definition.model_copy(update={"headers": self.cipher.seal(definition.headers)})
        event = ChronoUpdated(chrono_id=chrono_id, definition=definition, next_run_at=next_run)
        await self.store.append("chrono", chrono_id, event, expected=row["version"])
        return await self._read_chrono(chrono_id)

    async def pause_chrono(self, chrono_id: str, if_match: int | None) -> ChronoOut:
        """Stop firing; idempotent (pausing a paused chrono changes nothing)."""
        row = await self._current(chrono_id)
        _check_version(if_match, row["version"])
        if row["is_active"]:
            await self.store.append(
                "chrono", chrono_id, ChronoPaused(chrono_id=chrono_id), expected=row["version"]
            )
        return await self._read_chrono(chrono_id)

    async def resume_chrono(self, chrono_id: str, if_match: int | None) -> ChronoOut:
        """Fire again from now; idempotent. A one-shot whose time has passed cannot resume."""
        row = await self._current(chrono_id)
        _check_version(if_match, row["version"])
        if not row["is_active"]:
            schedule = NormalizedSchedule.model_validate(row["schedule"])
            next_run = next_after(schedule, utc_now())
            if next_run is None:
                raise ApiError(
                    409,
                    "schedule_exhausted",
                    "this one-shot chrono's time has passed; PATCH a new cron to run it again",
                    current_version=row["version"],
                )
            event = ChronoResumed(chrono_id=chrono_id, next_run_at=next_run)
            await self.store.append("chrono", chrono_id, event, expected=row["version"])
        return await self._read_chrono(chrono_id)

    async def delete_chrono(self, chrono_id: str, if_match: int | None) -> None:
        """Remove the chrono (its history stays)."""
        row = await self._current(chrono_id)
        _check_version(if_match, row["version"])
        await self.store.append(
            "chrono", chrono_id, ChronoDeleted(chrono_id=chrono_id), expected=row["version"]
        )

    async def trigger_chrono(self, chrono_id: str) -> TriggerOut:
        """Ask for a run now; the schedule does not move."""
        row = await self._current(chrono_id)
        now = utc_now()
        run = run_id(occurrence_id(chrono_id, now), 1)
        event = ChronoTriggered(chrono_id=chrono_id, run_id=run, requested_at=now)
        await self.store.append("chrono", chrono_id, event, expected=row["version"])
        return TriggerOut(chrono_id=chrono_id, run_id=run, scheduled_for=now)

    # --- channels ------------------------------------------------------------------------

    async def create_channel(self, body: ChannelCreate) -> ChannelOut:
        """Append ChannelCreated."""
        if body.provider != "WAHA":
            raise InvalidInputError(
                [FieldError(field="provider", message="unknown provider", accepted=["WAHA"])]
            )
        channel_id = new_id()
        definition = ChannelDefinition(name=body.name, config=body.config)
        event = ChannelCreated(channel_id=channel_id, definition=definition)
        await self.store.append("channel", channel_id, event, expected=0)
        return await self._read_channel(channel_id)

    async def _read_channel(self, channel_id: str) -> ChannelOut:
        channel = await queries.get_channel(self.engine, channel_id)
        if channel is None:
            raise not_found("channel", channel_id)
        return channel

    async def update_channel(
        self, channel_id: str, body: ChannelPatch, if_match: int | None
    ) -> ChannelOut:
        """Append ChannelUpdated with the merged definition."""
        current = await self._read_channel(channel_id)
        _check_version(body.version if body.version is not None else if_match, current.version)
        definition = ChannelDefinition(
            name=body.name or current.name, config=body.config or current.config
        )
        event = ChannelUpdated(channel_id=channel_id, definition=definition)
        await self.store.append("channel", channel_id, event, expected=current.version)
        return await self._read_channel(channel_id)

    async def delete_channel(self, channel_id: str, if_match: int | None) -> None:
        """Append ChannelDeleted."""
        current = await self._read_channel(channel_id)
        _check_version(if_match, current.version)
        event = ChannelDeleted(channel_id=channel_id)
        await self.store.append("channel", channel_id, event, expected=current.version)

    # --- functions -----------------------------------------------------------------------

    async def create_function(self, body: FunctionCreate) -> FunctionOut:
        """Append FunctionSaved (version 1)."""
        if body.channel_id:
            await self._require_refs({"channel_id": body.channel_id})
        function_id = new_id()
        definition = FunctionDefinition(
            name=body.name, code=body.code, limits=body.limits, channel_id=body.channel_id
        )
        event = FunctionSaved(
            function_id=function_id,
            definition=definition,
            function_version=1,
            checksum=code_checksum(body.code),
        )
        await self.store.append("function", function_id, event, expected=0)
        return await self._read_function(function_id)

    async def _read_function(self, function_id: str) -> FunctionOut:
        function = await queries.get_function(self.engine, function_id)
        if function is None:
            raise not_found("function", function_id)
        return function

    async def update_function(
        self, function_id: str, body: FunctionPatch, if_match: int | None
    ) -> FunctionOut:
        """Append FunctionSaved with the next function version."""
        current = await self._read_function(function_id)
        _check_version(body.version if body.version is not None else if_match, current.version)
        channel_id = (
            body.channel_id if "channel_id" in body.model_fields_set else current.channel_id
        )
        if channel_id:
            await self._require_refs({"channel_id": channel_id})
        code = body.code or current.code or ""
        definition = FunctionDefinition(
            name=body.name or current.name,
            code=code,
            limits=body.limits or current.limits,
            channel_id=channel_id,
        )
        event = FunctionSaved(
            function_id=function_id,
            definition=definition,
            function_version=current.function_version + 1,
            checksum=code_checksum(code),
        )
        await self.store.append("function", function_id, event, expected=current.version)
        return await self._read_function(function_id)

    async def delete_function(self, function_id: str, if_match: int | None) -> None:
        """Append FunctionDeleted."""
        current = await self._read_function(function_id)
        _check_version(if_match, current.version)
        event = FunctionDeleted(function_id=function_id)
        await self.store.append("function", function_id, event, expected=current.version)

    async def test_function(
        self, function_id: str, body: FunctionTestIn, nc: NatsClient
    ) -> FunctionTestOut:
        """Ask executor-function to run the function once now; nothing is saved or recorded."""
        function = await self._read_function(function_id)
        request = FunctionTestRequest(function_id=function_id, extras=body.extras, state=body.state)
        payload = request.model_dump_json(by_alias=True).encode()
        if len(payload) > nc.max_payload:
            raise ApiError(
                422,
                "validation_error",
                f"extras and state together exceed {nc.max_payload} bytes of JSON",
            )
        wait = function.limits.timeout_ms / 1000 + TEST_REPLY_MARGIN_S
        try:
            msg = await nc.request(names.FUNCTION_TEST_SUBJECT, payload, timeout=wait)
        except nats.errors.NoRespondersError:
            raise ApiError(
                504,
                "executor_unavailable",
                "no executor-function is running to run the test; start one and retry",
            ) from None
        except TimeoutError:
            raise ApiError(
                504,
                "executor_timeout",
                f"executor-function did not answer within {wait:g} s (timeoutMs "
                f"{function.limits.timeout_ms} + {TEST_REPLY_MARGIN_S:g} s); it may be busy",
            ) from None
        try:
            reply = FunctionTestReply.model_validate_json(msg.data)
        except ValidationError:
            raise ApiError(502, "executor_error", "executor-function answered garbage") from None
        if reply.error_code is not None or reply.status is None or reply.result is None:
            raise ApiError(
                _TEST_ERRORS.get(reply.error_code or "", 502),
                reply.error_code or "executor_error",
                reply.error_message or "executor-function could not run the test",
            )
        return FunctionTestOut(
            function_id=function_id,
            function_version=reply.function_version or function.function_version,
            status=reply.status,
            error_message=reply.result.get("errorMessage"),
            result=reply.result,
            state=reply.state or {},
        )
