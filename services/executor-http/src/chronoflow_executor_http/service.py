"""The use case: run one attempt of an HTTP chrono, record it, and line up the next attempt."""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from chronoflow_contracts import utc_now
from chronoflow_contracts.chrono import ChronoDefinition
from chronoflow_contracts.runs import RunCompleted, RunRequested
from chronoflow_egress import CappedResponse, EgressBlocked, send_capped
from chronoflow_egress.signing import webhook_headers
from chronoflow_executor_http import domain
from chronoflow_executor_http.domain import Outcome, Verdict
from chronoflow_executor_http.metrics import ExecutorMetrics
from chronoflow_platform.executor import rules
from chronoflow_platform.executor.runs import RunLedger
from chronoflow_platform.header_secrets import PREFIX, HeaderCipher, is_sensitive

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
        ledger: RunLedger,
        client: httpx.AsyncClient,
        secrets: Sequence[str],
        cipher: HeaderCipher | None,
        limits: Limits,
        metrics: ExecutorMetrics,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not secrets:
            raise ValueError("at least one webhook secret is needed to sign requests")
        self._ledger = ledger
        self._client = client
        # The static part of every request's headers (user agent, accept...), decoded once:
        # the client's Headers would work their encoding out again for each item.
        self._default_headers = tuple(client.headers.multi_items())
        self._secrets = list(secrets)
        self._cipher = cipher
        self._limits = limits
        self._metrics = metrics
        self._jitter = jitter

    async def execute(self, request: RunRequested) -> RunCompleted:
        """Run the attempt and record it; returns the outcome history holds for this run."""
        # RunStarted is stored while the request is out.
        run = self._ledger.open(request)
        if request.attempt == 1:
            lateness = (run.started_at - request.scheduled_for).total_seconds()
            self._metrics.http_lateness.observe(max(lateness, 0.0))
        attempt = await self._attempt(request)
        finished = run.finish()
        self._observe(attempt, finished.elapsed)

        verdict, response = attempt.verdict, attempt.response
        policy = request.definition.config.retry
        due = rules.next_attempt(verdict, policy, request.attempt, finished.at, self._jitter())
        result: dict[str, object] = {}
        if response is not None:
            result.update(
                responseBytes=len(response.body),
                truncated=response.truncated,
                redirects=response.redirects,
            )
        return await self._ledger.close(
            run,
            finished,
            status=verdict.status,
            due=due,
            http_status=verdict.http_status,
            response_snippet=response.snippet(domain.SNIPPET_CHARS) if response else None,
            error_message=verdict.error_message,
            result=result or None,
        )

    async def give_up(self, request: RunRequested, reason: str) -> None:
        """Record a final failure for a request the executor could not process at all."""
        await self._ledger.give_up(request, reason)

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
            # What client.build_request does, minus merging cookies and a base URL, which
            # this client never has; the URL is parsed once per distinct string.
            outgoing = domain.build_request(
                method,
                _parsed_url(definition.url),
                [
                    *self._default_headers,
                    *domain.request_headers(user_headers, body, signature).items(),
                ],
                body,
                {"timeout": _NO_PHASE_TIMEOUTS},
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
        # Retry-After counts only for a status that may be retried; most runs get a 2xx.
        retry_after = (
            response.headers.get("retry-after")
            if response.status in domain.RETRYABLE_STATUSES
            else None
        )
        verdict = domain.judge_response(response.status, retry_after, utc_now())
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


@functools.lru_cache(maxsize=4096)
def _parsed_url(url: str) -> httpx.URL:
    return httpx.URL(url)


#: The whole exchange is bounded by ``send_capped``'s deadline (the chrono's limit), which is
#: set before the request starts. Per-phase timeouts of the same length (connect, pool, read)
#: would start later and so could never expire first; left unset, aiohttp arms none of its
#: timers (a connect timer and a read timer re-armed on every chunk: ~2.5 us each on uvloop).
#: Shared by every request: nothing downstream changes it.
_NO_PHASE_TIMEOUTS: dict[str, float | None] = dict.fromkeys(("connect", "read", "write", "pool"))


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
