"""Garbage-collector settings for a long-running service process (call :func:`settle` once).

CPython starts a young-generation collection every 700 new container objects. A service that
turns a request or a message into a few hundred short-lived objects (pydantic models, dicts,
headers, futures) then collects several times per message, and each young collection also
walks whatever survived the previous ones. Measured on the 2-core box (``py-spy --native``),
the collector was about a quarter of the HTTP executor's CPU and doubled the API's p99 create
latency at 16 clients (61.8 ms -> 28.7 ms with :func:`settle`, docs/benchmarks.md). Almost
everything these services drop is freed by reference counting the moment it is dropped, so
collecting rarely costs little memory: a young generation of 50,000 objects is a few MiB.

What exists at start-up (modules, classes, validators, compiled routes) lives as long as the
process, so it is frozen out of the collector's sight rather than walked again on every full
collection.
"""

from __future__ import annotations

import gc

#: New container objects between young-generation collections (CPython's default is 700).
YOUNG_THRESHOLD = 50_000


def settle(*, full_threshold: int | None = None) -> None:
    """Collect once, freeze what survived, and make young collections rare.

    ``full_threshold`` (CPython's third threshold: middle-generation collections between full
    ones) replaces the current value when given; the scheduler uses it to practically turn
    automatic full collections off and runs them itself between releases.
    """
    gc.collect()
    gc.freeze()
    _, middle, full = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, full if full_threshold is None else full_threshold)
