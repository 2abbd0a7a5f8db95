"""Builds the executor-http service: egress policy, signing secrets, the pooled client, consumer."""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractResolver
from fastapi import FastAPI

from chronoflow_egress import EgressMetrics, build_client, egress_policy
from chronoflow_egress.signing import generate_secret
from chronoflow_executor_http.domain import TARGET
from chronoflow_executor_http.metrics import ExecutorMetrics
from chronoflow_executor_http.service import Limits, WebhookExecutor
from chronoflow_executor_http.settings import ExecutorHttpSettings
from chronoflow_platform.executor.handler import RunRequestHandler
from chronoflow_platform.executor.runtime import close_ledger, open_ledger, start_consumer
from chronoflow_platform.header_secrets import HeaderCipher
from chronoflow_platform.service import Runtime, create_service_app
from chronoflow_platform.telemetry import instrument_http_client

log = logging.getLogger(__name__)


def signing_secrets(settings: ExecutorHttpSettings) -> list[str]:
    """The configured secrets; in development only, a generated one when none is configured."""
    secrets = settings.webhook_secrets()
    if secrets:
        return secrets
    # Settings validation already refused a production profile without a secret.
    log.warning(
        "CHRONOFLOW_WEBHOOK_SECRET is not set: signing webhooks with a secret generated for "
        "this process (development profile only; receivers cannot verify across restarts)"
    )
    return [generate_secret()]


def create_app(
    settings: ExecutorHttpSettings, *, resolver: AbstractResolver | None = None
) -> FastAPI:
    """The executor-http ASGI app; NATS, the HTTP client and the consumer live in its lifespan.

    ``resolver`` replaces DNS under the egress guard (tests map names to loopback with it).
    """

    async def start(runtime: Runtime) -> None:
        policy = egress_policy(settings)
        secrets = signing_secrets(settings)
        cipher = (
            HeaderCipher(settings.secrets_key.get_secret_value())
            if settings.secrets_key is not None
            else None
        )
        metrics = ExecutorMetrics.register(runtime.registry)
        client = build_client(
            policy,
            timeout=settings.request_timeout_ms / 1000,
            max_connections=settings.max_connections or settings.concurrency,
            metrics=EgressMetrics(runtime.registry),
            resolver=resolver,
        )
        instrument_http_client(client)
        runtime.state["client"] = client
        executor = WebhookExecutor(
            ledger=open_ledger(runtime, metrics.runs),
            client=client,
            secrets=secrets,
            cipher=cipher,
            limits=Limits(
                default_timeout_ms=settings.request_timeout_ms,
                max_response_bytes=settings.max_response_bytes,
                allowed_methods=settings.methods(),
            ),
            metrics=metrics,
        )
        handler = RunRequestHandler(
            executor, TARGET, max_deliver=settings.max_deliver, observe=metrics.observe_delivery
        )
        await start_consumer(
            runtime,
            TARGET,
            handler,
            settings.consumer_options(settings.concurrency, settings.fetch_batch),
            metrics.runs,
        )
        log.info(
            "consuming with concurrency %d; egress allowlist: %s",
            settings.concurrency,
            ", ".join(str(entry) for entry in policy.allow) or "none",
        )

    async def stop(runtime: Runtime) -> None:
        await close_ledger(runtime)
        client = runtime.state.get("client")
        if client is not None:
            await client.aclose()

    return create_service_app(
        name="executor-http",
        settings=settings,
        needs_db=False,
        on_startup=start,
        on_shutdown=stop,
    )
