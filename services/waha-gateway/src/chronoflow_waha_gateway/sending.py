"""The send use case: one text through a session that is WORKING, paced, at most once per key.

Order of the checks, cheapest and most final first: the chat id, the session (from the
request or the channel), the record of texts already sent under the idempotency key, the
session's status, the session's pacing; then WAHA. Every answer is a ``WahaSendReply``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from chronoflow_contracts import utc_now
from chronoflow_contracts.recipients import normalize_recipient
from chronoflow_contracts.waha import SendErrorCode, WahaSendReply, WahaSendRequest
from chronoflow_waha_gateway.db import ChannelDirectory
from chronoflow_waha_gateway.metrics import DEDUPLICATED, SENT, GatewayMetrics
from chronoflow_waha_gateway.pacing import Pacer
from chronoflow_waha_gateway.record import SentRecord, SentText
from chronoflow_waha_gateway.sessions import ABSENT, SessionBook
from chronoflow_waha_gateway.waha_client import (
    SessionStatus,
    WahaClient,
    WahaClientError,
    WahaError,
    WahaHTTPError,
    WahaRateLimitedError,
    WahaSessionNotWorkingError,
)

log = logging.getLogger(__name__)

#: When WAHA throttles without saying for how long, the session rests this long.
DEFAULT_RATE_LIMIT_PAUSE_S = 60.0
#: A STARTING session usually works within seconds.
STARTING_RETRY_S = 10.0

Sleep = Callable[[float], Awaitable[None]]


def refused(
    code: SendErrorCode,
    error: str,
    *,
    retryable: bool = False,
    retry_after: float | None = None,
    status: int | None = None,
    session: str | None = None,
    session_status: str | None = None,
    chat_id: str | None = None,
) -> WahaSendReply:
    """A reply that says why nothing was sent."""
    return WahaSendReply(
        ok=False,
        code=code,
        error=error,
        retryable=retryable,
        retry_after=retry_after,
        status=status,
        session=session,
        session_status=session_status,
        chat_id=chat_id,
    )


def not_working(session: str, status: str) -> WahaSendReply:
    """The refusal for a session that cannot send, saying what would make it work."""
    hint = {
        ABSENT: "WAHA has no such session running: create or start it "
        f"(POST /waha/sessions, POST /waha/sessions/{session}/start)",
        SessionStatus.STOPPED: f"start it (POST /waha/sessions/{session}/start)",
        SessionStatus.STARTING: "it is starting; try again in a few seconds",
        SessionStatus.SCAN_QR_CODE: "link a phone by scanning its QR code "
        f"(GET /waha/sessions/{session}/auth/qr)",
        SessionStatus.FAILED: f"restart it (POST /waha/sessions/{session}/restart) "
        "or link the phone again",
    }.get(status, "check it with GET /waha/sessions/" + session)
    shown = "not running" if status == ABSENT else status
    starting = status == SessionStatus.STARTING
    return refused(
        SendErrorCode.SESSION_NOT_WORKING,
        f"WhatsApp session '{session}' is {shown}, not WORKING: {hint}",
        retryable=starting,
        retry_after=STARTING_RETRY_S if starting else None,
        session=session,
        session_status=None if status == ABSENT else status,
    )


class Sender:
    """Sends texts through WAHA on behalf of executor-message and ``ctx.message``."""

    def __init__(
        self,
        *,
        waha: WahaClient,
        book: SessionBook,
        pacer: Pacer,
        directory: ChannelDirectory,
        record: SentRecord,
        metrics: GatewayMetrics,
        rate_limit_pause_s: float = DEFAULT_RATE_LIMIT_PAUSE_S,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._waha = waha
        self._book = book
        self._pacer = pacer
        self._directory = directory
        self._record = record
        self._metrics = metrics
        self._rate_limit_pause_s = rate_limit_pause_s
        self._sleep = sleep
        self._inflight: dict[str, asyncio.Future[WahaSendReply]] = {}

    async def send(self, request: WahaSendRequest) -> WahaSendReply:
        """Send the text, or say why not; counted by outcome."""
        return self.count(await self._send(request))

    def count(self, reply: WahaSendReply) -> WahaSendReply:
        """Count an answer in ``chronoflow_waha_sends_total`` (returns it)."""
        outcome = (
            (DEDUPLICATED if reply.deduplicated else SENT)
            if reply.ok
            else (reply.code or SendErrorCode.INTERNAL).value
        )
        self._metrics.sends.labels(outcome).inc()
        return reply

    async def _send(self, request: WahaSendRequest) -> WahaSendReply:
        if normalize_recipient(request.chat_id) != request.chat_id:
            return refused(
                SendErrorCode.INVALID_REQUEST,
                f"not a WhatsApp chat id: {request.chat_id!r} "
                "(expected <digits>@c.us or a group's …@g.us)",
                chat_id=request.chat_id,
            )
        session = request.session
        if session is None:
            assert request.channel_id is not None
            session = await self._directory.session_of(request.channel_id)
            if session is None:
                return refused(
                    SendErrorCode.UNKNOWN_CHANNEL,
                    f"channel {request.channel_id} does not exist (or is not a WAHA channel)",
                    chat_id=request.chat_id,
                )
        key = request.idempotency_key
        if key is None:
            return await self._deliver(session, request)
        # One send per key at a time: a second request for the same key shares the first's
        # answer instead of racing it to WAHA.
        pending = self._inflight.get(key)
        if pending is not None:
            shared = await asyncio.shield(pending)
            return shared.model_copy(update={"deduplicated": True}) if shared.ok else shared
        future: asyncio.Future[WahaSendReply] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            reply = await self._once(key, session, request)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()
            raise
        else:
            future.set_result(reply)
        finally:
            del self._inflight[key]
        return reply

    async def _once(self, key: str, session: str, request: WahaSendRequest) -> WahaSendReply:
        try:
            sent = await self._record.find(key)
        except Exception as exc:  # JetStream unreachable: sending blind could send twice
            log.warning("cannot read the record of sent texts: %s", exc)
            return refused(
                SendErrorCode.UNAVAILABLE,
                "the record of sent texts is unavailable (NATS JetStream); try again",
                retryable=True,
                session=session,
                chat_id=request.chat_id,
            )
        if sent is not None:
            return WahaSendReply(
                ok=True,
                message_id=sent.message_id,
                session=sent.session,
                chat_id=sent.chat_id,
                deduplicated=True,
            )
        reply = await self._deliver(session, request)
        if reply.ok and reply.message_id is not None:
            entry = SentText(reply.message_id, session, request.chat_id, utc_now().isoformat())
            try:
                await self._record.remember(key, entry)
            except Exception:
                # The text is out; failing the reply would make the caller send it again.
                log.exception("sent %s but could not record it", reply.message_id)
        return reply

    async def _deliver(self, session: str, request: WahaSendRequest) -> WahaSendReply:
        chat_id = request.chat_id
        try:
            status = await self._book.status_for_send(session)
        except WahaError as exc:
            return _failure(exc, session, chat_id)
        if status != SessionStatus.WORKING:
            return not_working(session, status).model_copy(update={"chat_id": chat_id})
        slot = self._pacer.reserve(session)
        if not slot.granted:
            return refused(
                SendErrorCode.PACED,
                f"session '{session}' sends at most {self._rate_text()}: "
                f"its next free slot is in {slot.delay:.1f} s",
                retryable=True,
                retry_after=round(slot.delay, 3),
                session=session,
                chat_id=chat_id,
            )
        if slot.delay > 0:
            await self._sleep(slot.delay)
        if (late := self._pacer.departure(session)) > 0:
            await self._sleep(late)
        return await self._send_text(session, chat_id, request.text)

    async def _send_text(self, session: str, chat_id: str, text: str) -> WahaSendReply:
        try:
            message_id = await self._waha.send_text(session, chat_id, text)
        except WahaSessionNotWorkingError as exc:
            self._book.learn(session, exc.status or ABSENT)
            return not_working(session, exc.status or ABSENT).model_copy(
                update={"chat_id": chat_id, "status": exc.status_code}
            )
        except WahaRateLimitedError as exc:
            # WhatsApp's limit is the account's: every send through the session rests.
            pause = exc.retry_after if exc.retry_after is not None else self._rate_limit_pause_s
            self._pacer.hold(session, pause)
            return refused(
                SendErrorCode.RATE_LIMITED,
                str(exc),
                retryable=True,
                retry_after=pause,
                status=exc.status_code,
                session=session,
                chat_id=chat_id,
            )
        except WahaError as exc:
            return _failure(exc, session, chat_id)
        return WahaSendReply(ok=True, message_id=message_id, session=session, chat_id=chat_id)

    def _rate_text(self) -> str:
        return f"{self._pacer.rate_per_second:g} text(s) per second"


def _failure(exc: WahaError, session: str, chat_id: str) -> WahaSendReply:
    """The reply for a WAHA failure other than a session that does not work."""
    status = exc.status_code if isinstance(exc, WahaHTTPError) else None
    code = (
        SendErrorCode.REJECTED
        if isinstance(exc, WahaClientError) and not exc.retryable
        else SendErrorCode.UNAVAILABLE
    )
    return refused(
        code, str(exc), retryable=exc.retryable, status=status, session=session, chat_id=chat_id
    )
