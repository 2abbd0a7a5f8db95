"""Switchable faults for tests: rate limits, 500s that carry WhatsApp's 429, slow answers.

A fault without ``path`` applies to ``POST /api/sendText`` and may be narrowed to one ``chatId``
and/or ``session``; a fault with ``path`` applies to every request to exactly that path (e.g. to
slow down ``/api/sessions/default/start``). ``times`` limits how often it fires; without it the
fault stays until removed.
"""

from __future__ import annotations

import itertools
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from chronoflow_waha_simulator.protocol import (
    WahaHTTPError,
    internal_error,
    rate_overlimit_exception,
    retry_after_header,
    too_many_requests,
)


class FaultKind(StrEnum):
    """What the fault does to a matching request."""

    RATE_LIMIT = "rate_limit"
    """429 with ``Retry-After`` (default 1 s)."""
    SERVER_ERROR_429 = "server_error_429"
    """A 5xx whose body carries WhatsApp's 429 (``rate-overlimit``), as the engine reports it."""
    SERVER_ERROR = "server_error"
    """A 5xx that is not a rate limit."""
    DELAY = "delay"
    """Answer normally, ``delaySeconds`` later."""


class FaultSpec(BaseModel):
    """Body of ``POST /_sim/faults``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    kind: FaultKind
    chat_id: str | None = None
    session: str | None = None
    path: str | None = None
    times: int | None = Field(default=None, ge=1)
    retry_after: float | None = Field(default=None, ge=0)
    delay_seconds: float = Field(default=0.0, ge=0, le=300)
    status_code: int = Field(default=500, ge=500, le=599)


class Fault(BaseModel):
    """A fault in force, with how often it has fired."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: int
    spec: FaultSpec
    remaining: int | None
    hits: int = 0

    def matches(self, *, path: str, session: str | None, chat_id: str | None) -> bool:
        """Whether this fault applies to a request (``session``/``chat_id``: sendText's)."""
        if self.remaining == 0:
            return False
        spec = self.spec
        if spec.path is not None:
            return spec.path == path
        return (
            path == "/api/sendText"
            and spec.session in (None, session)
            and spec.chat_id in (None, chat_id)
        )

    def error(self, *, path: str, method: str, body: Any) -> WahaHTTPError:
        """The error response this fault answers with (not for ``delay``)."""
        spec = self.spec
        retry_headers = (
            {}
            if spec.retry_after is None
            else {"Retry-After": retry_after_header(spec.retry_after)}
        )
        if spec.kind is FaultKind.RATE_LIMIT:
            return too_many_requests(1.0 if spec.retry_after is None else spec.retry_after)
        if spec.kind is FaultKind.SERVER_ERROR_429:
            exception = rate_overlimit_exception()
        else:
            exception = {"message": "Simulated engine failure", "name": "Error"}
        return internal_error(
            status_code=spec.status_code,
            exception=exception,
            path=path,
            method=method,
            body=body,
            headers=retry_headers,
        )


class FaultBook:
    """The faults in force."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, spec: FaultSpec) -> Fault:
        """Put a fault in force."""
        fault = Fault(id=next(self._ids), spec=spec, remaining=spec.times)
        self._faults.append(fault)
        return fault

    def all(self) -> list[Fault]:
        """Every fault, spent ones included (``remaining`` 0)."""
        return list(self._faults)

    def remove(self, fault_id: int) -> bool:
        """Remove one fault; False if there was none with that id."""
        before = len(self._faults)
        self._faults = [f for f in self._faults if f.id != fault_id]
        return len(self._faults) != before

    def clear(self) -> None:
        """Remove every fault."""
        self._faults.clear()

    def take(
        self,
        *,
        delay: bool,
        path: str,
        session: str | None = None,
        chat_id: str | None = None,
    ) -> Fault | None:
        """The first matching fault of the delay kind (or of the error kinds), counted as fired.

        Without ``session``/``chat_id`` only path-scoped faults are considered (the check every
        route runs); with them, only sendText's own faults.
        """
        by_path = session is None and chat_id is None
        for fault in self._faults:
            if (fault.spec.kind is FaultKind.DELAY) != delay:
                continue
            if (fault.spec.path is not None) != by_path:
                continue
            if fault.matches(path=path, session=session, chat_id=chat_id):
                fault.hits += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None
