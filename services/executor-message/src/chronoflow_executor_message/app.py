"""Builds the executor-message service: the gateway client, the executor and the consumer."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from chronoflow_contracts import names
from chronoflow_executor_message.consumer import ConsumerOptions, WorkConsumer
from chronoflow_executor_message.gateway import GatewayClient
from chronoflow_executor_message.handlers import RunRequestHandler
from chronoflow_executor_message.metrics import ExecutorMetrics
from chronoflow_executor_message.service import MessageExecutor
from chronoflow_executor_message.settings import ExecutorMessageSettings
from chronoflow_platform.consumer_metrics import watch_consumers
from chronoflow_platform.service import Runtime, create_service_app

log = logging.getLogger(__name__)


def create_app(settings: ExecutorMessageSettings) -> FastAPI:
    """The executor-message ASGI app; NATS and the consumer live in its lifespan."""

    async def start(runtime: Runtime) -> None:
        metrics = ExecutorMetrics.register(runtime.registry)
        executor = MessageExecutor(
            js=runtime.js,
            gateway=GatewayClient(runtime.nc, timeout_s=settings.send_timeout_seconds),
            metrics=metrics,
        )
        consumer = WorkConsumer(
            runtime.js,
            RunRequestHandler(executor, max_deliver=settings.max_deliver),
            ConsumerOptions(
                concurrency=settings.concurrency,
                ack_wait_s=settings.ack_wait_seconds,
                max_deliver=settings.max_deliver,
                max_ack_pending=settings.max_ack_pending,
                shutdown_grace_s=settings.shutdown_grace_seconds,
            ),
        )
        await consumer.ensure()
        runtime.state["consumer"] = consumer
        runtime.spawn(consumer.run(), name="executor-message-consumer")
        watch_consumers(runtime, (names.WORK_STREAM, names.EXECUTOR_DURABLES["message"]))
        log.info("consuming MESSAGE runs with concurrency %d", settings.concurrency)

    return create_service_app(
        name="executor-message", settings=settings, needs_db=False, on_startup=start
    )
