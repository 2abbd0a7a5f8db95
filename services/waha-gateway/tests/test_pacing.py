"""Per-session pacing on a fake clock: spacing, jitter, the wait cap, rests after a rate limit."""

from __future__ import annotations

import pytest

from chronoflow_waha_gateway.pacing import Pacer, Reservation


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_slots_are_one_interval_apart_per_session() -> None:
    clock = Clock()
    pacer = Pacer(rate_per_second=2, clock=clock, unit=lambda: 0.0)
    delays = [pacer.reserve("a").delay for _ in range(4)]
    assert delays == [0.0, 0.5, 1.0, 1.5]
    # Another session has its own bucket.
    assert pacer.reserve("b").delay == 0.0
    # Time passing frees the slots: after 2 s the next one is immediate again.
    clock.now += 2.0
    assert pacer.reserve("a").delay == 0.0


def test_over_any_window_the_rate_holds() -> None:
    clock = Clock()
    pacer = Pacer(rate_per_second=5, max_wait_s=1000, clock=clock, unit=lambda: 0.0)
    sends = [clock.now + pacer.reserve("s").delay for _ in range(50)]
    for start in sends:
        in_window = [t for t in sends if start <= t < start + 2.0]
        assert len(in_window) <= 5 * 2.0 + 1


def test_jitter_delays_within_its_bound_without_changing_the_slots() -> None:
    clock = Clock()
    units = iter([0.0, 0.999, 0.5, 0.25])
    pacer = Pacer(rate_per_second=1, jitter_s=0.4, clock=clock, unit=lambda: next(units))
    delays = [pacer.reserve("s").delay for _ in range(4)]
    assert delays == pytest.approx([0.0, 1.3996, 2.2, 3.1])


def test_a_slot_beyond_the_wait_cap_is_refused_and_not_reserved() -> None:
    clock = Clock()
    pacer = Pacer(rate_per_second=1, max_wait_s=2.5, clock=clock, unit=lambda: 0.0)
    assert [pacer.reserve("s").granted for _ in range(4)] == [True, True, True, False]
    refused = pacer.reserve("s")
    assert not refused.granted
    assert refused.delay == pytest.approx(3.0)
    clock.now += 1.0
    assert pacer.reserve("s").granted


def test_pacing_off_sends_at_once() -> None:
    pacer = Pacer(rate_per_second=0, jitter_s=5, clock=Clock())
    assert not pacer.enabled
    assert {pacer.reserve("s").delay for _ in range(100)} == {0.0}


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_a_hold_keeps_every_send_off_the_session(rate: float) -> None:
    clock = Clock()
    pacer = Pacer(rate_per_second=rate, max_wait_s=5, clock=clock, unit=lambda: 0.0)
    pacer.hold("s", 30)
    held = pacer.reserve("s")
    assert not held.granted
    assert held.delay == pytest.approx(30)
    assert pacer.reserve("other").granted
    clock.now += 30
    assert pacer.reserve("s") == Reservation(granted=True, delay=0.0)


def test_a_late_departure_pushes_the_next_one_back() -> None:
    clock = Clock()
    pacer = Pacer(rate_per_second=10, clock=clock, unit=lambda: 0.0)
    assert pacer.reserve("s").delay == 0.0
    assert pacer.reserve("s").delay == pytest.approx(0.1)
    # The first send leaves 80 ms late (a busy loop); the second, on its slot, must wait.
    clock.now += 0.08
    assert pacer.departure("s") == 0.0
    clock.now += 0.02
    assert pacer.departure("s") == pytest.approx(0.08)
    # Pacing off: nobody waits.
    assert Pacer(rate_per_second=0, clock=clock).departure("s") == 0.0
