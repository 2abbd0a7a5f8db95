"""The function sandbox: user JavaScript in QuickJS-NG on wasmtime, in a pool of worker processes.

Typical use (the service creates the pool in its lifespan, never at import time)::

    async with SandboxPool(PoolConfig(cache_dir=settings.sandbox_cache_dir)) as pool:
        result = await pool.run_function(code, FunctionInput(chrono=...), bridge, Limits())
"""

from chronoflow_executor_function.sandbox.bridge import (
    HostBridge,
    HostOpError,
    HttpRequest,
    HttpResponse,
)
from chronoflow_executor_function.sandbox.compiled import EngineSettings
from chronoflow_executor_function.sandbox.model import (
    ChronoInfo,
    FunctionInput,
    FunctionResult,
    JsError,
    JsonValue,
    Limits,
    Termination,
    Usage,
)
from chronoflow_executor_function.sandbox.pool import (
    PoolConfig,
    PoolStats,
    SandboxError,
    SandboxPool,
)
from chronoflow_executor_function.sandbox.wasm_image import WasmImageError

__all__ = [
    "ChronoInfo",
    "EngineSettings",
    "FunctionInput",
    "FunctionResult",
    "HostBridge",
    "HostOpError",
    "HttpRequest",
    "HttpResponse",
    "JsError",
    "JsonValue",
    "Limits",
    "PoolConfig",
    "PoolStats",
    "SandboxError",
    "SandboxPool",
    "Termination",
    "Usage",
    "WasmImageError",
]
