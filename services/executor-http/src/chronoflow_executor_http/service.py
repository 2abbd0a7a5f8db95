"""The use case: run one attempt of an HTTP chrono, record it, and line up the next attempt."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

import httpx
from nats.js import JetStreamContext

from chronoflow_contracts import decode, names, new_id, utc_now
from chronoflow_contracts.chrono import ChronoDefinition, TargetType
from chronoflow_contracts.runs import (
    RunCompleted,
    RunRequested,
    RunStarted,
    RunStatus,
    Trigger,
    run_id,
    run_request_msg_id,
)
from chronoflow_egress import CappedResponse, EgressBlocked, send_capped
from chronoflow_egress.signing import webhook_headers
from chronoflow_executor_http import domain
from chronoflow_executor_http.domain import Outcome, Verdict
from chronoflow_executor_http.metrics import ExecutorMetrics
from chronoflow_executor_http.recording import EventRecorder, Stored
from chronoflow_platform.header_secrets import PREFIX, HeaderCipher, is_sensitive
from chronoflow_platform.publishing import publish_event

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """What the service configuration imposes on every attempt."""

    default_timeout_ms: int
    max_response_bytes: int
    allowed_methods: frozenset[str]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt's verdict and, when a response came back, the response."""

    verdict: Verdict
    response: CappedResponse | None = None


class WebhookExecutor:
    """Sends a RunRequested's webhook and records RunStarted, RunCompleted and the retry.

    Idempotent per run id: a redelivered request may send the webhook again (same
    ``webhook-id``, so receivers can drop it), but JetStream drops the second RunStarted and
    RunCompleted, and the retry follows the outcome that was recorded first.
    """

    def __init__(
        self,
        *,
        js: JetStreamContext,
        recorder: EventRecorder,
        client: httpx.AsyncClient,
        secrets: Sequence[str],
        cipher: HeaderCipher | None,
        limits: Limits,
        metrics: ExecutorMetrics,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not secrets:
            raise ValueError("at least one webhook secret is needed to sign requests")
        self._js = js
        self._recorder = recorder
        self._client = client
        self._secrets = list(secrets)
        self._cipher = cipher
        self._limits = limits
        self._metrics = metrics
        self._jitter = jitter

    async def execute(self, request: RunRequested) -> RunCompleted:
        """Run the attempt and record it; returns the outcome history holds for this run."""
        subject = names.runs_subject(request.chrono_id)
        started_at = utc_now()
        if request.attempt == 1:
            lateness = (started_at - request.scheduled_for).total_seconds()
            self._metrics.http_lateness.observe(max(lateness, 0.0))
        started = RunStarted(
            **_identity(request),
            target_type=TargetType.HTTP,
            started_at=started_at,
        )
        # Stored while the request is out; awaited before the outcome, so history reads
        # RunStarted then RunCompleted.
        started_stored = self._recorder.record(
            subject, started, msg_id=domain.started_msg_id(request.run_id)
        )
        started_stored.add_done_callback(_observed)

        clock = time.perf_counter()
        attempt = await self._attempt(request)
        elapsed = time.perf_counter() - clock
        finished_at = utc_now()
        self._observe(attempt, elapsed)
        await started_stored

        policy = request.definition.config.retry
        due = domain.next_attempt(
            attempt.verdict, policy, request.attempt, finished_at, self._jitter()
        )
        completed = self._completed(
            request,
            attempt=attempt,
            started_at=started_at,
            finished_at=finished_at,
            elapsed=elapsed,
            due=due,
        )
        stored = await self._recorder.record(
            subject, completed, msg_id=domain.completed_msg_id(request.run_id)
        )
        if stored.duplicate:
            # An earlier delivery recorded this attempt; its outcome is the one that counts.
            completed = await self._recorded(stored.seq) or completed
            due = _next_attempt_at(completed)
        else:
            self._metrics.run(completed.status.value).inc()
        if completed.will_retry and due is not None:
            await self._schedule_retry(request, completed, due)
        return completed

    async def give_up(self, request: RunRequested, reason: str) -> None:
        """Record a final failure for a request the executor could not process at all."""
        now = utc_now()
        completed = RunCompleted(
            **_identity(request),
            target_type=TargetType.HTTP,
            status=RunStatus.FAILED,
            started_at=now,
            finished_at=now,
            duration_ms=0,
            error_message=domain.clip(reason),
        )
        stored = await self._recorder.record(
            names.runs_subject(request.chrono_id),
            completed,
            msg_id=domain.completed_msg_id(request.run_id),
        )
        if not stored.duplicate:
            self._metrics.run(completed.status.value).inc()

    async def _attempt(self, request: RunRequested) -> Attempt:
        definition = request.definition
        method = (definition.method or "POST").upper()
        if method not in self._limits.allowed_methods:
            return _refused(f"method {method} is not in ALLOWED_METHODS")
        if not definition.url:
            return _refused("the chrono has no url")
        try:
            user_headers = self._open(definition.headers)
        except ValueError as exc:
            # The message names the header, never its value.
            return _refused(str(exc))
        body = domain.encode_body(definition.payload, method)
        signature = webhook_headers(self._secrets, request.occurrence_id, body or b"")
        limit = domain.timeout_s(definition, self._limits.default_timeout_ms)
        try:
            headers = httpx.Headers(self._client.headers)
            headers.update(domain.request_headers(user_headers, body, signature))
            # httpx encodes str headers as ASCII or refuses them, so this is what it would
            # find, without it trying every header in two encodings on each lookup's behalf.
            headers.encoding = "ascii"
            # What client.build_request does, minus merging cookies and a base URL, which
            # this client never has; the URL is parsed once per distinct string.
            outgoing = httpx.Request(
                method,
                _parsed_url(definition.url),
                content=body,
                headers=headers,
                extensions={"timeout": httpx.Timeout(limit).as_dict()},
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return _refused(f"invalid request: {type(exc).__name__}: {exc}")
        except ValueError as exc:
            # A header value httpx cannot encode; its text could quote a secret value.
            return _refused(f"invalid request: {type(exc).__name__} in a header")
        return await self._send(outgoing, definition, limit)

    async def _send(
        self, outgoing: httpx.Request, definition: ChronoDefinition, limit: float
    ) -> Attempt:
        self._metrics.inflight.inc()
        try:
            response = await send_capped(
                self._client,
                outgoing,
                max_body=self._limits.max_response_bytes,
                follow_redirects=definition.config.follow_redirects,
                sensitive_headers=_secret_header_names(definition.headers),
                deadline=limit,
            )
        except (EgressBlocked, httpx.HTTPError, ValueError) as exc:
            return Attempt(_failure(exc, limit))
        finally:
            self._metrics.inflight.dec()
        verdict = domain.judge_response(
            response.status, response.headers.get("retry-after"), utc_now()
        )
        return Attempt(verdict, response)

    def _open(self, headers: dict[str, str]) -> dict[str, str]:
        if self._cipher is not None:
            return self._cipher.open(headers)
        for name, value in headers.items():
            if value.startswith(PREFIX):
                raise ValueError(
                    f"header {name!r} is encrypted but CHRONOFLOW_SECRETS_KEY is not set"
                )
        return headers

    def _observe(self, attempt: Attempt, elapsed: float) -> None:
        status = attempt.response.status if attempt.response is not None else None
        self._metrics.response(domain.status_class(status), attempt.verdict.outcome).inc()
        if attempt.verdict.outcome not in (Outcome.BLOCKED, Outcome.REJECTED):
            self._metrics.http_duration.observe(elapsed)

    def _completed(
        self,
        request: RunRequested,
        *,
        attempt: Attempt,
        started_at: datetime,
        finished_at: datetime,
        elapsed: float,
        due: datetime | None,
    ) -> RunCompleted:
        verdict, response = attempt.verdict, attempt.response
        result: dict[str, object] = {}
        if response is not None:
            result.update(
                responseBytes=len(response.body),
                truncated=response.truncated,
                redirects=response.redirects,
            )
        if due is not None:
            result["nextAttemptAt"] = due.isoformat()
        return RunCompleted(
            **_identity(request),
            target_type=TargetType.HTTP,
            status=verdict.status,
            started_at=started_at,
            finished_at=finished_at,
            duration_ms=domain.duration_ms(elapsed),
            http_status=verdict.http_status,
            response_snippet=response.snippet(domain.SNIPPET_CHARS) if response else None,
            error_message=verdict.error_message,
            result=result or None,
            will_retry=due is not None,
        )

    async def _recorded(self, seq: int) -> RunCompleted | None:
        try:
            raw = await self._js.get_msg(names.RUNS_STREAM, seq, direct=True)
            headers = raw.headers or {}
            event = decode(
                headers.get(names.EVENT_TYPE, ""),
                int(headers.get(names.EVENT_VERSION, "1")),
                raw.data or b"",
            )
        except Exception:
            log.exception("cannot read the recorded outcome at %s:%d", names.RUNS_STREAM, seq)
            return None
        return event if isinstance(event, RunCompleted) else None

    async def _schedule_retry(
        self, request: RunRequested, completed: RunCompleted, due: datetime
    ) -> None:
        attempt = request.attempt + 1
        following = request.model_copy(
            update={
                "event_id": new_id(),
                "occurred_at": utc_now(),
                "causation_id": completed.event_id,
                "attempt": attempt,
                "run_id": run_id(request.occurrence_id, attempt),
            }
        )
        msg_id = run_request_msg_id(request.chrono_id, request.scheduled_for, attempt)
        target = names.work_subject(domain.TARGET)
        if due <= utc_now():
            await publish_event(self._js, target, following, msg_id=msg_id)
        else:
            # A JetStream schedule in the work stream itself: nats-server moves it to the
            # queue when due, so the retry survives any restart of this process.
            await publish_event(
                self._js,
                names.work_retry_subject(domain.TARGET, following.run_id),
                following,
                msg_id=msg_id,
                extra_headers={
                    names.SCHEDULE: domain.schedule_header(due),
                    names.SCHEDULE_TARGET: target,
                    names.DUE_AT: due.isoformat(),
                },
            )
        self._metrics.http_retries.inc()


class _Identity(TypedDict):
    chrono_id: str
    run_id: str
    occurrence_id: str
    scheduled_for: datetime
    trigger: Trigger
    attempt: int
    correlation_id: str | None
    causation_id: str | None


@functools.lru_cache(maxsize=4096)
def _parsed_url(url: str) -> httpx.URL:
    return httpx.URL(url)


def _observed(future: asyncio.Future[Stored]) -> None:
    # A failure surfaces where the future is awaited; a run that ended early never awaits it.
    if not future.cancelled():
        future.exception()


def _identity(request: RunRequested) -> _Identity:
    return {
        "chrono_id": request.chrono_id,
        "run_id": request.run_id,
        "occurrence_id": request.occurrence_id,
        "scheduled_for": request.scheduled_for,
        "trigger": request.trigger,
        "attempt": request.attempt,
        "correlation_id": request.correlation_id,
        "causation_id": request.event_id,
    }


def _failure(exc: Exception, limit: float) -> Verdict:
    """The verdict for an exchange that ended without a response."""
    if isinstance(exc, EgressBlocked):
        return domain.judge_refusal(Outcome.BLOCKED, str(exc))
    if isinstance(exc, httpx.TimeoutException):
        return domain.judge_timeout(limit)
    if isinstance(exc, httpx.TooManyRedirects):
        return domain.judge_refusal(Outcome.HTTP_ERROR, str(exc))
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return domain.judge_refusal(Outcome.REJECTED, f"invalid request: {exc}")
    if isinstance(exc, httpx.HTTPError):
        return domain.judge_connection_error(str(exc) or type(exc).__name__)
    # aiohttp refuses some headers (a newline in a value) only when sending; the message
    # could quote the value, which may be a secret.
    return domain.judge_refusal(Outcome.REJECTED, f"invalid request: {type(exc).__name__}")


def _refused(message: str) -> Attempt:
    return Attempt(domain.judge_refusal(Outcome.REJECTED, message))


def _secret_header_names(headers: dict[str, str]) -> list[str]:
    # Dropped if a followed redirect leaves the origin, like Authorization.
    return [
        name for name, value in headers.items() if value.startswith(PREFIX) or is_sensitive(name)
    ]


def _next_attempt_at(completed: RunCompleted) -> datetime | None:
    if not completed.will_retry or not isinstance(completed.result, dict):
        return None
    text = completed.result.get("nextAttemptAt")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
