"""The record of every message the simulator "delivered", for tests to read."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class DeliveredMessage(BaseModel):
    """One accepted ``POST /api/sendText`` (failed attempts are not recorded)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    id: str
    session: str
    chat_id: str
    text: str
    reply_to: str | None = None
    link_preview: bool | None = None
    timestamp: int
    """Unix seconds, as in the ``WAMessage`` answered."""
    delivered_at: datetime


class MessageLog:
    """Delivered messages in delivery order."""

    def __init__(self) -> None:
        self._messages: list[DeliveredMessage] = []

    def record(
        self,
        *,
        message_id: str,
        session: str,
        chat_id: str,
        text: str,
        reply_to: str | None,
        link_preview: bool | None,
    ) -> DeliveredMessage:
        """Remember one delivered message."""
        now = datetime.now(UTC)
        message = DeliveredMessage(
            id=message_id,
            session=session,
            chat_id=chat_id,
            text=text,
            reply_to=reply_to,
            link_preview=link_preview,
            timestamp=int(now.timestamp()),
            delivered_at=now,
        )
        self._messages.append(message)
        return message

    def find(
        self, *, session: str | None = None, chat_id: str | None = None
    ) -> list[DeliveredMessage]:
        """Messages, optionally only one session's or one chat's."""
        return [
            m
            for m in self._messages
            if session in (None, m.session) and chat_id in (None, m.chat_id)
        ]

    def clear(self) -> int:
        """Forget every message; returns how many there were."""
        count = len(self._messages)
        self._messages.clear()
        return count
