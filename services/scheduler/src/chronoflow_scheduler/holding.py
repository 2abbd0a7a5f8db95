"""Holds fired messages until their due instant, then releases them all at once.

One timer per distinct due instant, not one sleeping task per fire: when 10,000 occurrences
share an instant, their prepared runs are handed to the work batcher by one callback, and
the batcher starts writing before any of the 10,000 tasks is even woken. Tasks are woken
when their run is stored (or at the instant, when their fire needs the slow path).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from chronoflow_contracts import utc_now

log = logging.getLogger(__name__)

Release = Callable[[], None]

# asyncio may run a timer up to a clock tick early; a release earlier than this re-arms.
_EARLY_TOLERANCE_SECONDS = 0.0005


class ReleaseGate:
    """Runs each registered release function at its due instant (wall clock, UTC)."""

    def __init__(self) -> None:
        self._waiting: dict[datetime, list[Release]] = {}

    def at(self, due: datetime, release: Release) -> None:
        """Run ``release`` (synchronously, in the event loop) once ``due`` has come."""
        waiting = self._waiting.get(due)
        if waiting is None:
            self._waiting[due] = waiting = []
            self._arm(due)
        waiting.append(release)

    def discard(self, due: datetime, release: Release) -> None:
        """Forget a release that has not run yet."""
        waiting = self._waiting.get(due)
        if waiting is not None and release in waiting:
            waiting.remove(release)

    def __len__(self) -> int:
        return sum(len(w) for w in self._waiting.values())

    def next_due(self) -> datetime | None:
        """The earliest instant with a release still to run (None when nothing is held)."""
        return min(self._waiting, default=None)

    def _arm(self, due: datetime) -> None:
        delay = (due - utc_now()).total_seconds()
        asyncio.get_running_loop().call_later(max(delay, 0.0), self._open, due)

    def _open(self, due: datetime) -> None:
        if (due - utc_now()).total_seconds() > _EARLY_TOLERANCE_SECONDS:
            self._arm(due)  # the wall clock disagrees with the loop's clock: wait on
            return
        for release in self._waiting.pop(due, []):
            try:
                release()
            except Exception:  # one bad release must not hold back the others
                log.exception("releasing a held fire failed")
