"""The simulator's state: sessions, webhook delivery, faults and the message record."""

from __future__ import annotations

from chronoflow_waha_simulator.faults import FaultBook
from chronoflow_waha_simulator.messages import MessageLog
from chronoflow_waha_simulator.sessions import Session, SessionManager
from chronoflow_waha_simulator.settings import SimulatorSettings
from chronoflow_waha_simulator.webhooks import (
    WebhookDispatcher,
    session_status_envelope,
    targets_for,
)


class Simulator:
    """Everything one simulator instance holds; lives at ``app.state.simulator``."""

    def __init__(self, settings: SimulatorSettings) -> None:
        self.settings = settings
        self.webhooks = WebhookDispatcher(timeout_seconds=settings.hook_timeout_seconds)
        self.sessions = SessionManager(settings, on_status=self._announce)
        self.faults = FaultBook()
        self.messages = MessageLog()

    async def start(self) -> None:
        """Open the webhook client and start the sessions named in ``WHATSAPP_START_SESSION``."""
        await self.webhooks.start()
        for name in self.settings.start_sessions:
            session = self.sessions.get(name) or self.sessions.create(name, config=None, apps=None)
            self.sessions.start(session)

    async def aclose(self) -> None:
        """Stop the lifecycle timers and the webhook workers."""
        await self.sessions.aclose()
        await self.webhooks.aclose()

    async def reset(self) -> None:
        """Back to a fresh simulator (sessions, faults, messages, webhook log), still running."""
        await self.sessions.reset()
        self.faults.clear()
        self.messages.clear()
        await self.webhooks.drain()
        self.webhooks.clear()

    def _announce(self, session: Session) -> None:
        self.webhooks.emit(targets_for(session, self.settings), session_status_envelope(session))
