"""The use cases: run one attempt of a FUNCTION chrono (and record it), or test a function once."""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_contracts import utc_now
from chronoflow_contracts.functions import FunctionTestReply, FunctionTestRequest
from chronoflow_contracts.runs import RunCompleted, RunRequested, RunStatus
from chronoflow_executor_function import db, domain
from chronoflow_executor_function.bridge import RunBridge, run_deadline
from chronoflow_executor_function.db import StateConflictError, StoredFunction
from chronoflow_executor_function.gateway import WahaGateway
from chronoflow_executor_function.metrics import ExecutorMetrics
from chronoflow_executor_function.sandbox import (
    ChronoInfo,
    FunctionInput,
    FunctionResult,
    JsonValue,
    Limits,
    SandboxPool,
    Termination,
)
from chronoflow_platform.executor.rules import FinalStatus
from chronoflow_platform.executor.runs import RunLedger

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended, as RunCompleted records it."""

    status: FinalStatus
    error_message: str | None
    result: dict[str, Any] | None
    termination: Termination | None = None
    """The sandbox's verdict (None when the function never reached the sandbox)."""


class FunctionExecutor:
    """Runs functions in the sandbox pool with the service's bridge, env and state store.

    A scheduled attempt emits RunStarted and RunCompleted (message ids from the run id, so a
    redelivery's copies are dropped), saves ``ctx.state`` when the function completed, and
    schedules the next attempt when the sandbox crashed under the run.
    """

    def __init__(
        self,
        *,
        ledger: RunLedger,
        engine: AsyncEngine,
        pool: SandboxPool,
        client: httpx.AsyncClient,
        gateway: WahaGateway,
        env: Mapping[str, str],
        metrics: ExecutorMetrics,
        state_write_attempts: int,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._ledger = ledger
        self._engine = engine
        self._pool = pool
        self._client = client
        self._gateway = gateway
        self._env = dict(env)
        self._metrics = metrics
        self._state_write_attempts = state_write_attempts
        self._jitter = jitter

    # --- scheduled runs ------------------------------------------------------------------

    async def execute(self, request: RunRequested) -> RunCompleted:
        """Run the attempt and record it; returns the outcome history holds for this run."""
        run = self._ledger.open(request)
        await run.wait_started()
        outcome = await self._attempt(request)
        finished = run.finish()
        self._metrics.runs.target_duration.observe(finished.elapsed)

        due = None
        if outcome.termination is not None:
            due = domain.next_attempt(
                outcome.termination,
                request.definition.config.retry,
                request.attempt,
                finished.at,
                self._jitter(),
            )
        return await self._ledger.close(
            run,
            finished,
            status=outcome.status,
            due=due,
            error_message=outcome.error_message,
            result=outcome.result,
        )

    async def give_up(self, request: RunRequested, reason: str) -> None:
        """Record a final failure for a request the executor could not process at all."""
        await self._ledger.give_up(request, reason, limit=domain.MAX_ERROR_CHARS)

    async def already_finished(self, request: RunRequested) -> bool:
        """Whether history already holds this attempt's outcome (checked on redeliveries, so
        a run whose ack was lost is not run, and its side effects repeated, a second time)."""
        return await db.run_finished(self._engine, request.run_id)

    async def _attempt(self, request: RunRequested) -> Outcome:
        definition = request.definition
        if not definition.function_id:
            return Outcome(RunStatus.FAILED, "the chrono has no functionId", None)
        function = await db.load_function(self._engine, definition.function_id)
        if function is None:
            return Outcome(
                RunStatus.FAILED, f"function {definition.function_id} does not exist", None
            )
        limits = Limits.from_function_limits(function.limits)
        if definition.config.timeout_ms is not None:
            # The chrono's own timeoutMs may only shorten the function's.
            limits = dataclasses.replace(
                limits, timeout_ms=min(limits.timeout_ms, definition.config.timeout_ms)
            )
        chrono = ChronoInfo(
            id=request.chrono_id,
            name=request.chrono_name,
            scheduled_for=request.scheduled_for,
            attempt=request.attempt,
        )
        try:
            result = await self._sandbox(
                function,
                chrono,
                extras=definition.extras,
                state=function.state,
                limits=limits,
                channel_ids=(definition.channel_id, function.channel_id),
                occurrence_id=request.occurrence_id,
            )
        except ValueError as exc:
            return Outcome(RunStatus.FAILED, domain.clip(str(exc)), _about(function))
        status = domain.run_status(result.termination)
        error_message = result.error_message
        recorded: dict[str, Any] = {**result.to_json(), **_about(function)}
        if result.ok and result.changed_keys:
            upserts, deletes = result.state_patch()
            try:
                written = await db.save_state(
                    self._engine,
                    function.id,
                    upserts,
                    deletes,
                    base=function.state,
                    attempts=self._state_write_attempts,
                )
                recorded["stateRevision"] = written.revision
                if written.overwritten:
                    recorded["stateOverwritten"] = list(written.overwritten)
            except (StateConflictError, SQLAlchemyError, OSError) as exc:
                log.exception("the function completed but its state was not saved")
                status = RunStatus.FAILED
                error_message = f"the function completed but ctx.state was not saved: {exc}"
        return Outcome(
            status,
            None if error_message is None else domain.clip(error_message),
            recorded,
            termination=result.termination,
        )

    # --- POST /functions/{id}/test -------------------------------------------------------

    async def test(self, request: FunctionTestRequest) -> FunctionTestReply:
        """Run a saved function once, now: nothing scheduled, saved or recorded."""
        function = await db.load_function(self._engine, request.function_id)
        if function is None:
            return FunctionTestReply(
                error_code="not_found", error_message=f"function {request.function_id} not found"
            )
        chrono = ChronoInfo(id="test", name=f"{function.name} (test)", scheduled_for=utc_now())
        try:
            result = await self._sandbox(
                function,
                chrono,
                extras=request.extras,
                state=function.state if request.state is None else request.state,
                limits=Limits.from_function_limits(function.limits),
                channel_ids=(function.channel_id,),
                occurrence_id=None,
            )
        except ValueError as exc:
            return FunctionTestReply(error_code="invalid", error_message=str(exc))
        return FunctionTestReply(
            function_version=function.function_version,
            status=domain.run_status(result.termination),
            result={**result.to_json(), **_about(function)},
            state=dict(result.state),
        )

    # --- both ----------------------------------------------------------------------------

    async def _sandbox(
        self,
        function: StoredFunction,
        chrono: ChronoInfo,
        *,
        extras: Mapping[str, Any],
        state: Mapping[str, Any],
        limits: Limits,
        channel_ids: tuple[str | None, ...],
        occurrence_id: str | None,
    ) -> FunctionResult:
        bridge = RunBridge(
            client=self._client,
            gateway=self._gateway,
            channel_ids=channel_ids,
            occurrence_id=occurrence_id,
            deadline=run_deadline(limits.timeout_ms),
        )
        ctx_input = FunctionInput(chrono=chrono, extras=extras, state=state, env=self._env)
        result = await self._pool.run_function(function.code, ctx_input, bridge, limits)
        self._metrics.terminations.labels(result.termination.value).inc()
        self._metrics.cpu.observe(result.usage.js_ms / 1000)
        return result


def _about(function: StoredFunction) -> dict[str, JsonValue]:
    """Which code ran: kept in the run's result next to what it did."""
    return {
        "function": {
            "id": function.id,
            "version": function.function_version,
            "checksum": function.checksum,
        }
    }
