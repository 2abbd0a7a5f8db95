"""Every service starts against the real NATS and Postgres and answers /health and /ready."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from chronoflow_api.app import create_app as api_app
from chronoflow_api.projector.app import create_app as projector_app
from chronoflow_api.settings import ApiSettings, ProjectorSettings
from chronoflow_devstack.embedded import NatsServer
from chronoflow_executor_function.app import create_app as function_app
from chronoflow_executor_function.settings import ExecutorFunctionSettings
from chronoflow_executor_http.app import create_app as http_app
from chronoflow_executor_http.settings import ExecutorHttpSettings
from chronoflow_executor_message.app import create_app as message_app
from chronoflow_executor_message.settings import ExecutorMessageSettings
from chronoflow_scheduler.app import create_app as scheduler_app
from chronoflow_scheduler.settings import SchedulerSettings
from chronoflow_waha_gateway.app import create_app as gateway_app
from chronoflow_waha_gateway.settings import WahaGatewaySettings

FACTORIES: dict[str, Callable[[dict[str, str]], FastAPI]] = {
    "api": lambda env: api_app(ApiSettings.model_validate(env)),
    "projector": lambda env: projector_app(ProjectorSettings.model_validate(env)),
    "scheduler": lambda env: scheduler_app(SchedulerSettings.model_validate(env)),
    "executor-http": lambda env: http_app(ExecutorHttpSettings.model_validate(env)),
    "executor-message": lambda env: message_app(ExecutorMessageSettings.model_validate(env)),
    "executor-function": lambda env: function_app(ExecutorFunctionSettings.model_validate(env)),
    "waha-gateway": lambda env: gateway_app(WahaGatewaySettings.model_validate(env)),
}


@pytest.mark.parametrize("service", sorted(FACTORIES))
async def test_service_starts_and_reports_ready(
    service: str, nats_server: NatsServer, database_url: str
) -> None:
    env = {
        "NATS_URL": nats_server.url,
        "DATABASE_URL": database_url,
        "CHRONOFLOW_PROFILE": "development",
    }
    app = FACTORIES[service](env)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            health = await client.get("/health")
            assert health.status_code == 200
            assert health.json()["service"] == service
            ready = await client.get("/ready")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["nats"] == "ok"
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200
