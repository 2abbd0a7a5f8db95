"""What WAHA answers, as typed models: sessions, the linked account, the QR image."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SessionStatus(StrEnum):
    """WAHA's session statuses (``SessionInfo.status``)."""

    STOPPED = "STOPPED"
    STARTING = "STARTING"
    SCAN_QR_CODE = "SCAN_QR_CODE"
    PASSKEY_REQUIRED = "PASSKEY_REQUIRED"
    PASSKEY_CONFIRMATION_REQUIRED = "PASSKEY_CONFIRMATION_REQUIRED"
    WORKING = "WORKING"
    FAILED = "FAILED"


class MeInfo(BaseModel):
    """The WhatsApp account a session is linked to."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    id: str
    push_name: str | None = Field(default=None, alias="pushName")


class WahaSession(BaseModel):
    """``SessionInfo`` / ``SessionDTO``; fields WAHA adds are kept (``model_dump()`` has them)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    status: str
    """A ``SessionStatus`` value; kept as text so a status WAHA adds later does not break us."""
    config: dict[str, Any] | None = None
    me: MeInfo | None = None

    @property
    def is_working(self) -> bool:
        """Whether the session can send messages."""
        return self.status == SessionStatus.WORKING


class QRImage(BaseModel):
    """The pairing QR as WAHA's ``Base64File``."""

    model_config = ConfigDict(frozen=True)

    mimetype: str
    data: str
    """Base64 of the image."""
