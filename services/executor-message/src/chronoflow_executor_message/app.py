"""Builds the executor-message service: the gateway client, the executor and the consumer."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from chronoflow_executor_message.domain import TARGET
from chronoflow_executor_message.gateway import GatewayClient
from chronoflow_executor_message.metrics import ExecutorMetrics
from chronoflow_executor_message.service import MessageExecutor
from chronoflow_executor_message.settings import ExecutorMessageSettings
from chronoflow_platform.executor.handler import RunRequestHandler
from chronoflow_platform.executor.runtime import close_ledger, open_ledger, start_consumer
from chronoflow_platform.service import Runtime, create_service_app

log = logging.getLogger(__name__)


def create_app(settings: ExecutorMessageSettings) -> FastAPI:
    """The executor-message ASGI app; NATS and the consumer live in its lifespan."""

    async def start(runtime: Runtime) -> None:
        metrics = ExecutorMetrics.register(runtime.registry)
        executor = MessageExecutor(
            ledger=open_ledger(runtime, metrics.runs),
            gateway=GatewayClient(runtime.nc, timeout_s=settings.send_timeout_seconds),
            metrics=metrics,
        )
        await start_consumer(
            runtime,
            TARGET,
            RunRequestHandler(executor, TARGET, max_deliver=settings.max_deliver),
            settings.consumer_options(settings.concurrency),
            metrics.runs,
        )
        log.info("consuming MESSAGE runs with concurrency %d", settings.concurrency)

    return create_service_app(
        name="executor-message",
        settings=settings,
        needs_db=False,
        on_startup=start,
        on_shutdown=close_ledger,
    )
