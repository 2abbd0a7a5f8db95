"""Builds the executor-function service: sandbox pool, egress client, consumer, test endpoint."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from aiohttp.abc import AbstractResolver
from fastapi import FastAPI

from chronoflow_contracts import names
from chronoflow_egress import EgressMetrics, build_client, egress_policy
from chronoflow_executor_function import domain
from chronoflow_executor_function.gateway import WahaGateway
from chronoflow_executor_function.handlers import TestRequestHandler
from chronoflow_executor_function.metrics import ExecutorMetrics
from chronoflow_executor_function.sandbox import PoolConfig, SandboxPool
from chronoflow_executor_function.service import FunctionExecutor
from chronoflow_executor_function.settings import ExecutorFunctionSettings
from chronoflow_platform.executor.handler import RunRequestHandler
from chronoflow_platform.executor.runtime import close_ledger, open_ledger, start_consumer
from chronoflow_platform.service import Runtime, create_service_app

log = logging.getLogger(__name__)

#: Longest a ctx.http exchange may take whatever the run's deadline (the largest timeoutMs a
#: function may have); the run's own deadline is applied per request.
CLIENT_TIMEOUT_S = 300.0
USER_AGENT = "ChronoFlow-Functions/0.1"


def create_app(
    settings: ExecutorFunctionSettings,
    *,
    resolver: AbstractResolver | None = None,
    environ: Mapping[str, str] | None = None,
) -> FastAPI:
    """The executor-function ASGI app; everything it holds lives in its lifespan.

    ``resolver`` replaces DNS under the egress guard and ``environ`` the process environment
    ``ctx.env`` reads from (tests use both).
    """

    async def start(runtime: Runtime) -> None:
        assert runtime.engine is not None
        policy = egress_policy(settings)
        metrics = ExecutorMetrics.register(runtime.registry)
        env = domain.allowlisted_env(
            settings.env_names(), os.environ if environ is None else environ
        )
        for missing in set(settings.env_names()) - set(env):
            log.warning("FUNCTION_ENV_ALLOWLIST names %s, which is not set", missing)
        pool = SandboxPool(PoolConfig(cache_dir=settings.cache_dir, size=settings.pool_size))
        await pool.start()
        runtime.state["pool"] = pool
        client = build_client(
            policy,
            timeout=CLIENT_TIMEOUT_S,
            max_connections=max(16, settings.pool_size * 8),
            user_agent=USER_AGENT,
            metrics=EgressMetrics(runtime.registry),
            resolver=resolver,
        )
        runtime.state["client"] = client
        executor = FunctionExecutor(
            ledger=open_ledger(runtime, metrics.runs),
            engine=runtime.engine,
            pool=pool,
            client=client,
            gateway=WahaGateway(runtime.nc, timeout_s=settings.message_timeout_seconds),
            env=env,
            metrics=metrics,
            state_write_attempts=settings.state_write_attempts,
        )
        runtime.state["executor"] = executor
        tests = TestRequestHandler(executor, concurrency=max(1, settings.pool_size // 2))
        runtime.state["tests"] = tests
        runtime.state["test_sub"] = await runtime.nc.subscribe(
            names.FUNCTION_TEST_SUBJECT,
            queue=names.EXECUTOR_DURABLES["function"],
            cb=tests.dispatch,
        )
        handler = RunRequestHandler(
            executor,
            domain.TARGET,
            max_deliver=settings.max_deliver,
            already_finished=executor.already_finished,
        )
        await start_consumer(
            runtime,
            domain.TARGET,
            handler,
            # One message per free sandbox: the rest wait in the stream, not in this replica.
            settings.consumer_options(settings.pool_size),
            metrics.runs,
        )
        log.info(
            "running functions in %d sandboxes; egress allowlist: %s; ctx.env: %s",
            settings.pool_size,
            ", ".join(str(entry) for entry in policy.allow) or "none",
            ", ".join(sorted(env)) or "none",
        )

    async def stop(runtime: Runtime) -> None:
        # The consumer task was cancelled (and its runs finished or handed back) before this.
        sub = runtime.state.get("test_sub")
        if sub is not None:
            await sub.unsubscribe()
        tests: TestRequestHandler | None = runtime.state.get("tests")
        if tests is not None:
            await tests.close()
        await close_ledger(runtime)
        pool: SandboxPool | None = runtime.state.get("pool")
        if pool is not None:
            await pool.close()
        client = runtime.state.get("client")
        if client is not None:
            await client.aclose()

    return create_service_app(
        name="executor-function",
        settings=settings,
        needs_db=True,
        on_startup=start,
        on_shutdown=stop,
    )
