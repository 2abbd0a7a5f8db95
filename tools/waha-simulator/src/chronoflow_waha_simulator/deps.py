"""Request dependencies: the simulator state, the API key check and path-scoped faults."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request

from chronoflow_waha_simulator.protocol import API_KEY_HEADER, unauthorized
from chronoflow_waha_simulator.simulator import Simulator


def get_simulator(request: Request) -> Simulator:
    """The simulator behind this app."""
    simulator: Simulator = request.app.state.simulator
    return simulator


SimulatorDep = Annotated[Simulator, Depends(get_simulator)]


def key_matches(configured: str, given: str) -> bool:
    """WAHA accepts the key itself or, when configured as ``sha512:<hex>``, its SHA-512."""
    if configured.startswith("sha512:"):
        digest = hashlib.sha512(given.encode()).hexdigest()
        return hmac.compare_digest(configured.removeprefix("sha512:").lower(), digest)
    return hmac.compare_digest(configured.encode(), given.encode())


async def require_api_key(request: Request, simulator: SimulatorDep) -> None:
    """401 unless ``X-Api-Key`` carries the configured key (no check when none is set)."""
    configured = simulator.settings.api_key
    if configured is None:
        return
    given = request.headers.get(API_KEY_HEADER)
    if given is None or not key_matches(configured.get_secret_value(), given):
        raise unauthorized()


async def apply_path_faults(request: Request, simulator: SimulatorDep) -> None:
    """Faults registered for this exact path: first a delay, then an error, if any."""
    path = request.url.path
    if (delay := simulator.faults.take(delay=True, path=path)) is not None:
        await asyncio.sleep(delay.spec.delay_seconds)
    if (fault := simulator.faults.take(delay=False, path=path)) is not None:
        raise fault.error(path=path, method=request.method, body={})


ApiGuards = [Depends(require_api_key), Depends(apply_path_faults)]
"""Dependencies of every WAHA (``/api``) route, in order."""
