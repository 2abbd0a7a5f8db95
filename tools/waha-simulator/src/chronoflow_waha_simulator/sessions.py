"""Sessions and WAHA's status lifecycle: STOPPED → STARTING → SCAN_QR_CODE → WORKING (or FAILED).

A session that has been paired keeps its account (``me``) across stop and restart, so a restart
goes straight back to WORKING; logout forgets the account. Every status change is reported to
``on_status`` (the webhook dispatcher) in the order it happens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from chronoflow_waha_simulator import ids
from chronoflow_waha_simulator.protocol import ENGINE, SessionStatus
from chronoflow_waha_simulator.settings import SimulatorSettings

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.02


def now_ms() -> int:
    """Unix time in milliseconds, WAHA's unit for status timestamps."""
    return time.time_ns() // 1_000_000


@dataclass
class Session:
    """One simulated WhatsApp session."""

    name: str
    config: dict[str, Any] | None = None
    apps: list[Any] | None = None
    status: SessionStatus = SessionStatus.STOPPED
    me: dict[str, str] | None = None
    statuses: deque[tuple[SessionStatus, int]] = field(default_factory=lambda: deque(maxlen=3))
    activity_ms: int = field(default_factory=now_ms)
    qr: str | None = None
    pairing_phone: str | None = None
    runner: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """WAHA keeps a session "running" (addressable) in every status but STOPPED."""
        return self.status is not SessionStatus.STOPPED

    def info(self, *, expand_apps: bool = False) -> dict[str, Any]:
        """The session as ``SessionInfo`` (also a valid ``SessionDTO``)."""
        out: dict[str, Any] = {
            "name": self.name,
            "status": self.status.value,
            "presence": {},
            "timestamps": {"activity": self.activity_ms},
            "engine": {"engine": ENGINE},
        }
        if self.config is not None:
            out["config"] = self.config
        if self.status is SessionStatus.WORKING and self.me is not None:
            out["me"] = dict(self.me)
        if expand_apps:
            out["apps"] = list(self.apps or [])
        return out


StatusListener = Callable[[Session], None]


class SessionExistsError(Exception):
    """``POST /api/sessions`` for a name that is taken."""


class SessionManager:
    """All sessions of the simulator and the timers that move them through the lifecycle."""

    def __init__(self, settings: SimulatorSettings, on_status: StatusListener) -> None:
        self._settings = settings
        self._on_status = on_status
        self._sessions: dict[str, Session] = {}

    def sessions(self, *, include_stopped: bool) -> list[Session]:
        """Sessions in creation order; WAHA hides STOPPED ones unless ``all=true``."""
        return [s for s in self._sessions.values() if include_stopped or s.running]

    def get(self, name: str) -> Session | None:
        """The session called ``name``, if it exists."""
        return self._sessions.get(name)

    def create(
        self, name: str, *, config: dict[str, Any] | None, apps: list[Any] | None
    ) -> Session:
        """A new STOPPED session."""
        if name in self._sessions:
            raise SessionExistsError(name)
        session = Session(name=name, config=config, apps=apps)
        session.statuses.append((SessionStatus.STOPPED, session.activity_ms))
        self._sessions[name] = session
        return session

    def update(
        self, session: Session, *, config: dict[str, Any] | None, apps: list[Any] | None
    ) -> None:
        """Replace the configuration; a running session is stopped and started again."""
        was_running = session.running
        self.stop(session)
        session.config = config
        if apps is not None:
            session.apps = apps
        if was_running:
            self.start(session)

    def delete(self, name: str) -> None:
        """Stop, log out and forget the session (idempotent)."""
        session = self._sessions.get(name)
        if session is None:
            return
        self.stop(session)
        session.me = None
        del self._sessions[name]

    def start(self, session: Session) -> None:
        """STOPPED → STARTING, then SCAN_QR_CODE or (if paired before) WORKING. Idempotent."""
        if session.running:
            return
        self._set(session, SessionStatus.STARTING)
        session.runner = asyncio.get_running_loop().create_task(
            self._boot(session), name=f"waha-sim-session-{session.name}"
        )

    def stop(self, session: Session) -> None:
        """Any status → STOPPED; the account stays linked. Idempotent."""
        self._cancel_runner(session)
        if session.running:
            session.qr = None
            self._set(session, SessionStatus.STOPPED)

    def restart(self, session: Session) -> None:
        """Stop (if running) and start again."""
        self.stop(session)
        self.start(session)

    def logout(self, session: Session) -> None:
        """Forget the account; a running session starts again from a fresh QR."""
        was_running = session.running
        self.stop(session)
        session.me = None
        session.pairing_phone = None
        if was_running:
            self.start(session)

    def pair(self, session: Session, *, phone_number: str | None, push_name: str | None) -> None:
        """The QR was scanned (or the code entered) on the phone: SCAN_QR_CODE → WORKING."""
        self._cancel_runner(session)
        self._link(session, phone_number=phone_number, push_name=push_name)

    def fail(self, session: Session, *, logged_out: bool) -> None:
        """The engine lost the connection (e.g. the device was removed on the phone)."""
        self._cancel_runner(session)
        if logged_out:
            session.me = None
        session.qr = None
        self._set(session, SessionStatus.FAILED)

    async def wait_for(
        self, session: Session, expected: Collection[SessionStatus], wait_seconds: float
    ) -> bool:
        """Wait up to ``wait_seconds`` for the session to reach one of ``expected``."""
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while session.status not in expected:
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(_POLL_SECONDS)
        return True

    async def aclose(self) -> None:
        """Cancel every timer (shutdown or reset)."""
        tasks = [s.runner for s in self._sessions.values() if s.runner is not None]
        for session in self._sessions.values():
            self._cancel_runner(session)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def reset(self) -> None:
        """Forget every session."""
        await self.aclose()
        self._sessions.clear()

    async def _boot(self, session: Session) -> None:
        settings = self._settings
        await asyncio.sleep(settings.starting_seconds)
        if session.me is not None:
            self._set(session, SessionStatus.WORKING)
            return
        session.qr = ids.qr_value()
        self._set(session, SessionStatus.SCAN_QR_CODE)
        loop = asyncio.get_running_loop()
        pair_at = (
            None if settings.auto_pair_seconds is None else loop.time() + settings.auto_pair_seconds
        )
        refresh = settings.qr_refresh_seconds
        while True:
            until_pair = None if pair_at is None else max(0.0, pair_at - loop.time())
            if until_pair is not None and (refresh is None or until_pair <= refresh):
                await asyncio.sleep(until_pair)
                self._link(session, phone_number=None, push_name=None)
                return
            if refresh is None:
                return
            await asyncio.sleep(refresh)
            session.qr = ids.qr_value()
            self._set(session, SessionStatus.SCAN_QR_CODE)

    def _link(self, session: Session, *, phone_number: str | None, push_name: str | None) -> None:
        digits = "".join(ch for ch in (phone_number or session.pairing_phone or "") if ch.isdigit())
        session.me = {
            "id": f"{digits or self._settings.phone_number}@c.us",
            "pushName": push_name or self._settings.push_name,
        }
        session.qr = None
        session.pairing_phone = None
        self._set(session, SessionStatus.WORKING)

    def _cancel_runner(self, session: Session) -> None:
        runner, session.runner = session.runner, None
        if runner is not None and runner is not asyncio.current_task():
            runner.cancel()

    def _set(self, session: Session, status: SessionStatus) -> None:
        session.status = status
        session.activity_ms = now_ms()
        session.statuses.append((status, session.activity_ms))
        log.info("session %s is %s", session.name, status.value)
        try:
            self._on_status(session)
        except Exception:  # a broken listener must not wedge the lifecycle
            log.exception("status listener failed for session %s", session.name)
