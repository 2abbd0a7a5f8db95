"""The wasmtime engine configuration and the on-disk cache of the compiled QuickJS module."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import wasmtime

from chronoflow_executor_function.sandbox.model import MIB
from chronoflow_executor_function.sandbox.wasm_image import (
    EXPORTED_API,
    OUTPUT_SHA256,
    REACTOR_API,
    REACTOR_VERSION,
    WasmImageError,
    build_image,
)

MEMORY_HEADROOM_MB = 16
"""Linear memory above the JS heap limit: the image's data and C stack (~2.2 MiB), allocator
slack, and room for the SDK to report logs after the heap limit was hit."""


MAX_WASM_STACK_KB = 2048


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Engine-wide choices; part of the compiled-module cache key."""

    max_memory_mb: int = 512
    """The largest ``memory_mb`` a run may ask for; sizes the per-store address reservation."""
    wasm_stack_kb: int = 2048
    """Native stack for wasm frames. A JavaScript frame costs several times more native stack
    than shadow stack, so this must stay well above ``Limits.js_stack_kb`` for deep recursion
    to end in a catchable RangeError rather than a trap. wasmtime refuses (by aborting the
    process) more than its 2 MiB async stack size."""
    epoch_tick_ms: int = 10
    """Epoch ticker period: the granularity of the CPU and wall-clock limits inside wasm."""

    def __post_init__(self) -> None:
        if not 64 <= self.wasm_stack_kb <= MAX_WASM_STACK_KB:
            raise ValueError(f"wasm_stack_kb must be within 64..{MAX_WASM_STACK_KB}")
        if not 1 <= self.epoch_tick_ms <= 1000:
            raise ValueError("epoch_tick_ms must be within 1..1000")
        if not 1 <= self.max_memory_mb <= 4096 - MEMORY_HEADROOM_MB:
            raise ValueError("max_memory_mb must fit a 32-bit linear memory")

    @property
    def memory_reservation(self) -> int:
        """Virtual address space reserved per store, so linear memory never has to move."""
        return (self.max_memory_mb + MEMORY_HEADROOM_MB) * MIB


def build_config(settings: EngineSettings) -> wasmtime.Config:
    """Cranelift (never Winch), epoch interruption and fuel metering, no shared memory."""
    config = wasmtime.Config()
    config.strategy = "cranelift"
    config.cranelift_opt_level = "speed"
    config.epoch_interruption = True
    config.consume_fuel = True
    config.max_wasm_stack = settings.wasm_stack_kb * 1024
    # A bounded reservation (with explicit bounds checks) instead of the default 4 GiB + guard
    # per store keeps a worker's address space small enough for an RLIMIT_AS cap.
    config.memory_reservation = settings.memory_reservation
    config.memory_guard_size = 64 * 1024
    config.memory_reservation_for_growth = 0
    config.wasm_threads = False
    config.shared_memory = False
    return config


def cache_key(settings: EngineSettings) -> str:
    """What the compiled artefact depends on: wasmtime, the engine config, the wasm, the CPU."""
    material = {
        "wasmtime": metadata.version("wasmtime"),
        "machine": platform.machine(),
        "settings": asdict(settings),
        "config": "cranelift/speed/epoch/fuel/guard64k/v1",
        "wasm": OUTPUT_SHA256,
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
    return digest[:32]


def module_path(cache_dir: Path, settings: EngineSettings) -> Path:
    """The cache file of the compiled module for these settings."""
    return cache_dir / f"quickjs-ng-{REACTOR_VERSION}-{cache_key(settings)}.cwasm"


def check_exports(module: wasmtime.Module) -> None:
    """Refuse a module whose C API signatures are not the ones the host marshals for."""
    found = {
        export.name: export.type
        for export in module.exports
        if isinstance(export.type, wasmtime.FuncType)
    }
    for name, (params, results) in (EXPORTED_API | REACTOR_API).items():
        func_type = found.get(name)
        if func_type is None:
            raise WasmImageError(f"{name} is not exported")
        got = (
            tuple(str(p) for p in func_type.params),
            tuple(str(r) for r in func_type.results),
        )
        if got != (params, results):
            raise WasmImageError(f"{name} has signature {got}, expected {(params, results)}")


def prepare_module(cache_dir: Path, settings: EngineSettings) -> Path:
    """Compile the QuickJS module into ``cache_dir`` unless a usable copy is there already.

    Only this process writes the cache (atomically), so workers just deserialize it. The
    directory is created private: a compiled module is native code, and whoever can write
    it can run code in the workers.
    """
    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = module_path(cache_dir, settings)
    engine = wasmtime.Engine(build_config(settings))
    if path.exists():
        try:
            check_exports(wasmtime.Module.deserialize_file(engine, str(path)))
        except (wasmtime.WasmtimeError, WasmImageError):
            path.unlink(missing_ok=True)
        else:
            return path
    module = wasmtime.Module(engine, build_image())
    check_exports(module)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".cwasm-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(module.serialize())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_module(engine: wasmtime.Engine, path: Path) -> wasmtime.Module:
    """The compiled module from the cache (for an engine built with the same settings)."""
    module = wasmtime.Module.deserialize_file(engine, str(path))
    check_exports(module)
    return module
