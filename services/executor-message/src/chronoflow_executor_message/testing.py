"""Support for tests and benchmarks: MESSAGE RunRequested factories, as the scheduler emits them.

Not used by the service itself.
"""

from __future__ import annotations

from chronoflow_contracts.chrono import ChronoDefinition, ExecConfig, TargetType
from chronoflow_platform.executor.testing import (
    one_off_definition,
    publish_run,
    retry_policy,
    run_request,
)

__all__ = ["message_definition", "publish_run", "run_request"]


def message_definition(
    channel_id: str,
    recipients: list[str],
    text: str = "Bom dia! Promo de hoje...",
    *,
    attempts: int = 1,
    delay_ms: int = 100,
    backoff: str = "fixed",
) -> ChronoDefinition:
    """A MESSAGE chrono's definition, as the scheduler snapshots it into a RunRequested."""
    return one_off_definition(
        TargetType.MESSAGE,
        "message test",
        channel_id=channel_id,
        message_template=text,
        recipients=recipients,
        config=ExecConfig(
            retry=retry_policy(attempts=attempts, delay_ms=delay_ms, backoff=backoff)
        ),
    )
