"""What the gateway knows of each WAHA session's status, and when a send may go through it.

The policy (docs/whatsapp.md): a ``WORKING`` status learnt in the last minute is trusted, since
WAHA's own ``sendText`` refuses anyway if the session stopped meanwhile (and that refusal is
learnt at once). Any other status is never trusted: before refusing a send, WAHA is asked, so
a session paired a moment ago is never turned away because of a stale entry. Webhooks, the
session routes, refusals and the periodic poll all feed the book.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from chronoflow_contracts.channels import ChannelStatus
from chronoflow_waha_gateway.metrics import GatewayMetrics
from chronoflow_waha_gateway.waha_client import (
    SessionStatus,
    WahaClient,
    WahaNotFoundError,
    WahaSession,
)

#: How long a WORKING status is believed without asking WAHA again.
WORKING_TRUSTED_S = 60.0
#: The status of a session WAHA does not know (or no longer runs).
ABSENT = "ABSENT"


@dataclass(frozen=True, slots=True)
class Known:
    """A session's status and when it held (Unix seconds)."""

    status: str
    learnt_at: float


class SessionBook:
    """The latest status known for each session; asks WAHA when a send needs to know.

    Observations are ordered by when they held: a webhook's event time, or when WAHA was
    asked. A webhook delivered late (WAHA retries them) cannot undo what a fresher answer said.
    """

    def __init__(
        self,
        *,
        waha: WahaClient,
        metrics: GatewayMetrics,
        clock: Callable[[], float],
        working_trusted_s: float = WORKING_TRUSTED_S,
    ) -> None:
        self._waha = waha
        self._metrics = metrics
        self._clock = clock
        self._working_trusted_s = working_trusted_s
        self._known: dict[str, Known] = {}
        self._asking: dict[str, asyncio.Future[str]] = {}

    def get(self, session: str) -> Known | None:
        """The last status learnt, if any."""
        return self._known.get(session)

    def learn(self, session: str, status: str, *, learnt_at: float | None = None) -> None:
        """Record a status (``learnt_at``: when it held, default now); an observation older
        than the one held is ignored."""
        at = self._clock() if learnt_at is None else learnt_at
        previous = self._known.get(session)
        if previous is not None and previous.learnt_at > at:
            return
        self._known[session] = Known(status, at)
        if previous is not None and previous.status != status:
            self._metrics.session_status.labels(session, previous.status).set(0)
        self._metrics.session_status.labels(session, status).set(1)

    def learn_session(self, info: WahaSession, *, learnt_at: float | None = None) -> None:
        """Record what a WAHA answer says of a session."""
        self.learn(info.name, info.status, learnt_at=learnt_at)

    async def status_for_send(self, session: str) -> str:
        """``WORKING`` if a send may go now; otherwise the current status, fresh from WAHA.

        Raises ``WahaError`` when WAHA cannot be asked.
        """
        known = self._known.get(session)
        if (
            known is not None
            and known.status == SessionStatus.WORKING
            and self._clock() - known.learnt_at < self._working_trusted_s
        ):
            return known.status
        return await self.ask(session)

    async def ask(self, session: str) -> str:
        """The session's status as WAHA reports it now (concurrent callers share one call)."""
        pending = self._asking.get(session)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._asking[session] = future
        try:
            started = self._clock()
            try:
                info = await self._waha.get_session(session)
            except WahaNotFoundError:
                status = ABSENT
            else:
                status = info.status
            self.learn(session, status, learnt_at=started)
            future.set_result(status)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            # Every waiter sees the exception; none may be left unretrieved when nobody waits.
            future.exception()
            raise
        finally:
            del self._asking[session]
        return status


def channel_status(status: str) -> ChannelStatus | None:
    """The channel status a WAHA session status stands for (None: nothing to record).

    WAHA's passkey statuses wait for the user like a QR scan does; a session WAHA does not
    know is as good as stopped.
    """
    if status in ChannelStatus.__members__:
        return ChannelStatus(status)
    if status in (SessionStatus.PASSKEY_REQUIRED, SessionStatus.PASSKEY_CONFIRMATION_REQUIRED):
        return ChannelStatus.SCAN_QR_CODE
    if status == ABSENT:
        return ChannelStatus.STOPPED
    return None
