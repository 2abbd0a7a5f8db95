"""The rules of one MESSAGE attempt, without I/O: who still needs the text, how each send
ended, the run's verdict, and when the next attempt is due.

A run's ``result`` (and a retry's ``carriedResult``) is
``{channelId, session?, sent, failed, pending, recipients: [{recipient, chatId, status,
messageId?, attempt?, error?, retryable?}], nextAttemptAt?}`` with ``status`` one of ``SENT``,
``FAILED`` or ``PENDING`` (waiting for the next attempt).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from chronoflow_contracts.chrono import ChronoDefinition
from chronoflow_contracts.recipients import normalize_recipient
from chronoflow_contracts.runs import RunStatus
from chronoflow_contracts.waha import SendErrorCode, WahaSendReply
from chronoflow_platform.executor.rules import FinalStatus, clip

TARGET: Final = "message"
#: Refusals that concern the session or the gateway, not one recipient: the attempt stops,
#: since the next recipient would be refused the same way (or, for a rate limit, would make
#: WhatsApp angrier).
_STOPPING = frozenset(
    {
        SendErrorCode.RATE_LIMITED,
        SendErrorCode.SESSION_NOT_WORKING,
        SendErrorCode.UNKNOWN_CHANNEL,
        SendErrorCode.INTERNAL,
    }
)


class Delivery(enum.StrEnum):
    """Where one recipient stands."""

    SENT = "SENT"
    FAILED = "FAILED"
    PENDING = "PENDING"


@dataclass(frozen=True, slots=True)
class Recipient:
    """One recipient's outcome so far."""

    recipient: str
    chat_id: str | None
    status: Delivery
    message_id: str | None = None
    attempt: int | None = None
    error: str | None = None
    retryable: bool = False

    @property
    def settled(self) -> bool:
        """Sent, or failed in a way no retry can mend: never sent to again."""
        return self.status is Delivery.SENT or (
            self.status is Delivery.FAILED and not self.retryable
        )

    def as_json(self) -> dict[str, Any]:
        """The recipient's entry in the run's ``result``."""
        entry: dict[str, Any] = {
            "recipient": self.recipient,
            "chatId": self.chat_id,
            "status": self.status.value,
        }
        if self.message_id is not None:
            entry["messageId"] = self.message_id
        if self.attempt is not None:
            entry["attempt"] = self.attempt
        if self.error is not None:
            entry["error"] = self.error
            entry["retryable"] = self.retryable
        return entry

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> Recipient | None:
        """An entry of a carried result (None if unreadable)."""
        try:
            return cls(
                recipient=str(entry["recipient"]),
                chat_id=entry.get("chatId"),
                status=Delivery(entry["status"]),
                message_id=entry.get("messageId"),
                attempt=entry.get("attempt"),
                error=entry.get("error"),
                retryable=bool(entry.get("retryable", False)),
            )
        except (KeyError, TypeError, ValueError):
            return None


def definition_problem(definition: ChronoDefinition) -> str | None:
    """Why a MESSAGE run cannot start at all, or None."""
    missing = [
        name
        for name, value in (
            ("channelId", definition.channel_id),
            ("messageTemplate", definition.message_template),
            ("recipients", definition.recipients),
        )
        if not value
    ]
    if missing:
        return "the chrono has no " + " and no ".join(missing)
    return None


def plan(recipients: list[str], carried: Any) -> list[Recipient]:
    """Every recipient once (by chat id, in the chrono's order), with what earlier attempts
    settled carried over; the others ``PENDING``."""
    earlier: dict[str, Recipient] = {}
    if isinstance(carried, dict) and isinstance(carried.get("recipients"), list):
        for entry in carried["recipients"]:
            known = Recipient.from_json(entry) if isinstance(entry, dict) else None
            if known is not None and known.chat_id is not None and known.settled:
                earlier[known.chat_id] = known
    planned: list[Recipient] = []
    seen: set[str] = set()
    for written in recipients:
        chat_id = normalize_recipient(written)
        if chat_id is None:
            planned.append(
                Recipient(
                    written,
                    None,
                    Delivery.FAILED,
                    error="not a phone number or WhatsApp chat id",
                )
            )
            continue
        if chat_id in seen:
            continue
        seen.add(chat_id)
        planned.append(earlier.get(chat_id) or Recipient(written, chat_id, Delivery.PENDING))
    return planned


def after_reply(recipient: Recipient, reply: WahaSendReply, attempt: int) -> Recipient:
    """The recipient once the gateway answered."""
    if reply.ok:
        return replace(
            recipient,
            status=Delivery.SENT,
            message_id=reply.message_id,
            attempt=attempt,
            error=None,
            retryable=False,
        )
    return replace(
        recipient,
        status=Delivery.FAILED,
        attempt=attempt,
        error=clip(reply.error or "the waha-gateway refused the text"),
        retryable=reply.retryable,
    )


def stops_the_attempt(reply: WahaSendReply) -> bool:
    """Whether the rest of the list waits for another attempt after this answer."""
    if reply.ok:
        return False
    if reply.code in _STOPPING:
        return True
    # Unavailable without a WAHA status: the gateway or WAHA is not answering at all.
    return reply.code is SendErrorCode.UNAVAILABLE and reply.status is None


@dataclass(frozen=True, slots=True)
class Verdict:
    """How the attempt ended."""

    status: FinalStatus
    retryable: bool
    error_message: str | None
    retry_after_s: float | None
    http_status: int | None


def judge(recipients: list[Recipient], stop: WahaSendReply | None) -> Verdict:
    """SUCCESS when everyone has the text; otherwise FAILED, retryable when a later attempt
    could reach someone who does not have it yet.

    ``stop`` is the answer that ended the attempt early (a rate limit, a session that does
    not work), if one did: its message leads the run's ``errorMessage``.
    """
    missing = [r for r in recipients if r.status is not Delivery.SENT]
    if not missing and stop is None:
        return Verdict(RunStatus.SUCCESS, False, None, None, None)
    stop_is_final = stop is not None and not stop.retryable
    retryable = not stop_is_final and any(not r.settled for r in missing)
    if stop is not None and stop.error:
        reason = stop.error
    elif missing:
        first = next((r for r in missing if r.error), missing[0])
        reason = f"{first.chat_id or first.recipient}: {first.error or 'not sent'}"
    else:
        reason = "the attempt stopped"
    if len(recipients) <= 1:
        message = reason
    else:
        message = f"{len(missing)} of {len(recipients)} recipients did not get the text: {reason}"
    return Verdict(
        RunStatus.FAILED,
        retryable,
        clip(message),
        stop.retry_after if stop is not None else None,
        stop.status if stop is not None else None,
    )


def finish(recipients: list[Recipient], *, will_retry: bool, reason: str) -> list[Recipient]:
    """Recipients as the run records them: with no next attempt, nobody stays PENDING."""
    if will_retry:
        return recipients
    return [
        replace(r, status=Delivery.FAILED, error=f"not sent: {reason}")
        if r.status is Delivery.PENDING
        else r
        for r in recipients
    ]


def result(
    recipients: list[Recipient],
    *,
    channel_id: str | None,
    session: str | None,
    next_attempt_at: datetime | None,
) -> dict[str, Any]:
    """The run's ``result`` (and the next attempt's ``carriedResult``)."""
    counts = {d: sum(1 for r in recipients if r.status is d) for d in Delivery}
    body: dict[str, Any] = {"channelId": channel_id}
    if session is not None:
        body["session"] = session
    body.update(
        sent=counts[Delivery.SENT],
        failed=counts[Delivery.FAILED],
        pending=counts[Delivery.PENDING],
        recipients=[r.as_json() for r in recipients],
    )
    if next_attempt_at is not None:
        body["nextAttemptAt"] = next_attempt_at.isoformat()
    return body


def idempotency_key(occurrence_id: str, chat_id: str) -> str:
    """One text per occurrence and chat, whatever the attempt or delivery."""
    return f"message:{occurrence_id}:{chat_id}"
