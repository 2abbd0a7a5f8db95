"""Builds the projector process: the consumer loops plus operational endpoints."""

from __future__ import annotations

from fastapi import FastAPI

from chronoflow_api.projector.consumer import STREAMS, ProjectorMetrics, StreamProjector
from chronoflow_api.settings import ProjectorSettings
from chronoflow_contracts import names
from chronoflow_platform.consumer_metrics import watch_consumers
from chronoflow_platform.service import Runtime, create_service_app


async def start_projection(runtime: Runtime) -> None:
    """Spawn one projector loop per stream on the runtime."""
    assert runtime.engine is not None
    metrics = ProjectorMetrics.register(runtime.registry)
    for stream in STREAMS:
        projector = StreamProjector(
            nc=runtime.nc, js=runtime.js, engine=runtime.engine, stream=stream, metrics=metrics
        )
        runtime.spawn(projector.run(), name=f"projector-{stream}")
    watch_consumers(runtime, *((stream, names.PROJECTOR_DURABLE) for stream in STREAMS))


def create_app(settings: ProjectorSettings) -> FastAPI:
    """The projector ASGI app (health, readiness, metrics) with its consumers in the lifespan."""
    # The read models are rebuildable and each checkpoint commits with its changes: after a
    # crash that loses unflushed commits the projector re-applies from the older checkpoint.
    return create_service_app(
        name="projector",
        settings=settings,
        needs_db=True,
        on_startup=start_projection,
        synchronous_commit=False,
    )
