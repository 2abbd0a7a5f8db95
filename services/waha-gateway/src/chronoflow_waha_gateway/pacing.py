"""Per-session send pacing: a token bucket of one token per session (no bursts).

Each send reserves the session's next free slot; slots are ``1 / rate`` seconds apart, so over
any window a session sends at most ``rate * window + 1`` texts. Jitter moves each send up to
``jitter`` seconds later within the pacing, so sends do not leave on a metronome; the rate of
the slots themselves is unchanged. A slot further away than ``max_wait`` is not reserved: the
caller is told when to ask again instead of waiting past its own timeout. When WhatsApp
throttles a session, :meth:`Pacer.hold` keeps every send off it for a while, paced or not.

A send that leaves late (a busy event loop) must not leave the next one closer than an
interval behind it: :meth:`Pacer.departure` spaces the actual departures too.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reservation:
    """A slot: wait ``delay`` seconds, then send (``granted``); or ask again after ``delay``."""

    granted: bool
    delay: float


class Pacer:
    """The pacing of every session, on a monotonic clock (seconds)."""

    def __init__(
        self,
        *,
        rate_per_second: float,
        jitter_s: float = 0.0,
        max_wait_s: float = 10.0,
        clock: Callable[[], float],
        unit: Callable[[], float] = random.random,
    ) -> None:
        self.rate_per_second = rate_per_second
        self._interval = 1.0 / rate_per_second if rate_per_second > 0 else 0.0
        self._jitter_s = jitter_s if rate_per_second > 0 else 0.0
        self._max_wait_s = max_wait_s
        self._clock = clock
        self._unit = unit
        self._next_free: dict[str, float] = {}
        self._departed: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        """Whether sends are paced at all."""
        return self._interval > 0

    def reserve(self, session: str) -> Reservation:
        """Take the session's next slot, unless it is further away than ``max_wait``."""
        next_free = self._next_free.get(session)
        if next_free is None and not self.enabled:
            return Reservation(granted=True, delay=0.0)
        now = self._clock()
        slot = now if next_free is None else max(now, next_free)
        wait = slot - now
        if wait > self._max_wait_s:
            return Reservation(granted=False, delay=wait)
        if self.enabled:
            self._next_free[session] = slot + self._interval
        else:
            self._next_free.pop(session, None)
        jitter = self._unit() * self._jitter_s if self._jitter_s else 0.0
        return Reservation(granted=True, delay=wait + jitter)

    def hold(self, session: str, seconds: float) -> None:
        """No send on ``session`` for the next ``seconds`` (WhatsApp said to slow down)."""
        until = self._clock() + seconds
        self._next_free[session] = max(self._next_free.get(session, until), until)

    def departure(self, session: str) -> float:
        """Called when a send is about to leave: how much longer it must wait so it leaves at
        least one interval after the session's previous send (0 when it may go now)."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        previous = self._departed.get(session)
        wait = 0.0 if previous is None else max(0.0, previous + self._interval - now)
        self._departed[session] = now + wait
        return wait
