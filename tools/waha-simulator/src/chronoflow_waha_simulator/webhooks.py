"""``session.status`` webhooks: WAHA's event envelope, its HMAC-SHA512 signature, and delivery.

Each webhook URL has its own queue and worker, so events reach one receiver in the order they
happened and a dead receiver (retrying) does not hold up the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from chronoflow_waha_simulator import ids
from chronoflow_waha_simulator.protocol import (
    ENGINE,
    SESSION_STATUS_EVENT,
    WAHA_VERSION,
    WEBHOOK_HMAC_ALGORITHM,
    WEBHOOK_HMAC_ALGORITHM_HEADER,
    WEBHOOK_HMAC_HEADER,
    WEBHOOK_REQUEST_ID_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
    SessionStatus,
    environment,
)
from chronoflow_waha_simulator.sessions import Session, now_ms
from chronoflow_waha_simulator.settings import SimulatorSettings

log = logging.getLogger(__name__)


def sign(body: bytes, key: str) -> str:
    """``X-Webhook-Hmac``: hex HMAC-SHA512 of the raw body."""
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


def encode(envelope: dict[str, Any]) -> bytes:
    """The raw body, serialized compactly the way ``JSON.stringify`` does."""
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def session_status_envelope(session: Session) -> dict[str, Any]:
    """A ``WAHAWebhookSessionStatus`` event for the session's current status."""
    envelope: dict[str, Any] = {
        "id": ids.event_id(),
        "timestamp": now_ms(),
        "event": SESSION_STATUS_EVENT,
        "session": session.name,
        "payload": {
            "name": session.name,
            "status": session.status.value,
            "statuses": [{"status": s.value, "timestamp": ts} for s, ts in session.statuses],
            "data": None,
        },
        "engine": ENGINE,
        "environment": environment(),
    }
    metadata = (session.config or {}).get("metadata")
    if isinstance(metadata, dict):
        envelope["metadata"] = metadata
    if session.me is not None and session.status is SessionStatus.WORKING:
        envelope["me"] = dict(session.me)
    return envelope


@dataclass(frozen=True)
class WebhookTarget:
    """Where one webhook goes and how it is signed and retried."""

    url: str
    events: frozenset[str]
    hmac_key: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    attempts: int = 3
    delay_seconds: float = 2.0

    def wants(self, event: str) -> bool:
        """Whether this webhook subscribed to ``event`` (``*`` is every event)."""
        return event in self.events or "*" in self.events


def targets_for(session: Session, settings: SimulatorSettings) -> list[WebhookTarget]:
    """The session's own ``config.webhooks`` plus the global ``WHATSAPP_HOOK_*`` ones."""
    targets: list[WebhookTarget] = []
    for hook in (session.config or {}).get("webhooks") or []:
        if not isinstance(hook, dict) or not hook.get("url"):
            continue
        retries = hook.get("retries") or {}
        targets.append(
            WebhookTarget(
                url=str(hook["url"]),
                events=frozenset(str(e) for e in hook.get("events") or []),
                hmac_key=(hook.get("hmac") or {}).get("key") or None,
                headers=tuple(
                    (str(h["name"]), str(h["value"])) for h in hook.get("customHeaders") or []
                ),
                attempts=max(1, int(retries.get("attempts") or settings.hook_retries_attempts)),
                delay_seconds=float(
                    retries.get("delaySeconds", settings.hook_retries_delay_seconds)
                ),
            )
        )
    key = settings.hook_hmac_key.get_secret_value() if settings.hook_hmac_key else None
    targets.extend(
        WebhookTarget(
            url=url,
            events=frozenset(settings.hook_events),
            hmac_key=key,
            attempts=settings.hook_retries_attempts,
            delay_seconds=settings.hook_retries_delay_seconds,
        )
        for url in settings.hook_urls
    )
    return targets


@dataclass
class Delivery:
    """One event sent (or being sent) to one webhook URL; ``GET /_sim/webhooks`` lists them."""

    request_id: str
    url: str
    event: str
    session: str
    status: str
    body: str
    attempts: int = 0
    response_status: int | None = None
    error: str | None = None
    delivered: bool = False
    signed: bool = False

    def as_json(self) -> dict[str, Any]:
        """The record as the simulator's JSON."""
        return {
            "requestId": self.request_id,
            "url": self.url,
            "event": self.event,
            "session": self.session,
            "status": self.status,
            "signed": self.signed,
            "attempts": self.attempts,
            "delivered": self.delivered,
            "responseStatus": self.response_status,
            "error": self.error,
            "body": self.body,
        }


@dataclass
class _Job:
    target: WebhookTarget
    body: bytes
    delivery: Delivery


class WebhookDispatcher:
    """Queues events per URL and POSTs them with WAHA's headers; keeps a delivery log."""

    def __init__(self, *, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        self.deliveries: list[Delivery] = []
        self._client: httpx.AsyncClient | None = None
        self._queues: dict[str, asyncio.Queue[_Job]] = {}
        self._workers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Open the HTTP client (from the app's lifespan)."""
        self._client = httpx.AsyncClient(
            timeout=self.timeout_seconds, headers={"User-Agent": f"WAHA/{WAHA_VERSION}"}
        )

    def emit(self, targets: list[WebhookTarget], envelope: dict[str, Any]) -> None:
        """Queue ``envelope`` for every target subscribed to its event."""
        event = str(envelope["event"])
        chosen = [t for t in targets if t.wants(event)]
        if not chosen:
            return
        body = encode(envelope)
        payload = envelope.get("payload") or {}
        for target in chosen:
            delivery = Delivery(
                request_id=ids.ulid(),
                url=target.url,
                event=event,
                session=str(envelope["session"]),
                status=str(payload.get("status", "")),
                body=body.decode(),
                signed=target.hmac_key is not None,
            )
            self.deliveries.append(delivery)
            self._queue(target.url).put_nowait(_Job(target, body, delivery))

    async def drain(self) -> None:
        """Wait until every queued event has been delivered or given up on."""
        await asyncio.gather(*(q.join() for q in self._queues.values()))

    def clear(self) -> None:
        """Forget the delivery log."""
        self.deliveries.clear()

    async def aclose(self) -> None:
        """Stop the workers and close the HTTP client."""
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()
        self._queues.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _queue(self, url: str) -> asyncio.Queue[_Job]:
        queue = self._queues.get(url)
        if queue is None:
            queue = self._queues[url] = asyncio.Queue()
            self._workers.append(
                asyncio.get_running_loop().create_task(self._work(queue), name=f"webhook {url}")
            )
        return queue

    async def _work(self, queue: asyncio.Queue[_Job]) -> None:
        while True:
            job = await queue.get()
            try:
                await self._deliver(job)
            finally:
                queue.task_done()

    async def _deliver(self, job: _Job) -> None:
        if self._client is None:
            job.delivery.error = "the simulator is not running"
            return
        target, delivery = job.target, job.delivery
        headers = {
            "content-type": "application/json",
            WEBHOOK_REQUEST_ID_HEADER: delivery.request_id,
            WEBHOOK_TIMESTAMP_HEADER: str(now_ms()),
            **dict(target.headers),
        }
        if target.hmac_key is not None:
            headers[WEBHOOK_HMAC_HEADER] = sign(job.body, target.hmac_key)
            headers[WEBHOOK_HMAC_ALGORITHM_HEADER] = WEBHOOK_HMAC_ALGORITHM
        for attempt in range(1, target.attempts + 1):
            delivery.attempts = attempt
            try:
                response = await self._client.post(target.url, content=job.body, headers=headers)
            except httpx.HTTPError as exc:
                delivery.error = f"{type(exc).__name__}: {exc}"
            else:
                delivery.response_status = response.status_code
                if response.is_success:
                    delivery.delivered, delivery.error = True, None
                    return
                delivery.error = f"HTTP {response.status_code}"
            if attempt < target.attempts:
                await asyncio.sleep(target.delay_seconds)
        log.warning("webhook %s to %s failed: %s", delivery.event, target.url, delivery.error)
