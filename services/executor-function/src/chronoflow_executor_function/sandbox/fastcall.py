"""Direct calls into the QuickJS exports, bypassing wasmtime-py's generic ``Func.__call__``."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import wasmtime

from chronoflow_executor_function.sandbox.wasm_image import EXPORTED_API, REACTOR_API

SIGNATURES = EXPORTED_API | REACTOR_API
"""Every function the host calls; ``compiled.check_exports`` verified each on load."""
ENABLED = True
"""Use the direct call path where wasmtime-py's internals allow it (tests turn it off)."""


Call = Callable[..., Any]


def direct_caller(
    store: wasmtime.Store, func: wasmtime.Func, signature: tuple[tuple[str, ...], tuple[str, ...]]
) -> Call | None:
    """A direct ``wasmtime_func_call_unchecked`` for ``func``, or None if unavailable.

    wasmtime-py's ``Func.__call__`` re-reads the function type and boxes every argument on
    each call (~20 us); a run makes hundreds of calls. The unchecked call is sound because
    every signature was checked against ``EXPORTED_API`` when the module was loaded. It uses
    wasmtime-py internals (``Store._context``, ``Func._func``), hence the pinned ``<51`` and
    the fallback to the public call when they are missing.
    """
    try:
        from wasmtime import _ffi as ffi
        from wasmtime._func import enter_wasm

        context = store._context()
        raw_func = ctypes.byref(func._func)
        raw_type = ffi.wasmtime_val_raw
        call_unchecked = ffi.wasmtime_func_call_unchecked
        error_from_ptr = wasmtime.WasmtimeError._from_ptr
    except (ImportError, AttributeError):
        return None
    params, results = signature
    size = max(len(params), len(results), 1)
    buffer = (raw_type * size)()
    result_kind = results[0] if results else None

    def call(*args: int) -> int | None:
        # Raw slots are little-endian unions: an i32 parameter reads the low half of i64.
        for index, arg in enumerate(args):
            buffer[index].i64 = arg
        with enter_wasm(store) as trap:
            error = call_unchecked(context, raw_func, buffer, size, trap)
            if error:
                raise error_from_ptr(error)
        if result_kind == "i32":
            value: int = buffer[0].i32
            return value
        if result_kind == "i64":
            wide: int = buffer[0].i64
            return wide
        return None

    return call
