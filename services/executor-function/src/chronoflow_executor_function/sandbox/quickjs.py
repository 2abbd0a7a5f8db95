"""A thin typed layer over the QuickJS C API exported by the rewritten reactor.

Values are ``JSValue``s as wasm32 QuickJS-NG represents them: NaN-boxed in an i64, the tag
in the high 32 bits. Only strings cross the boundary: the SDK speaks JSON.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import wasmtime

from chronoflow_executor_function.sandbox import fastcall
from chronoflow_executor_function.sandbox.fastcall import Call

JSValue = int

EVAL_TYPE_GLOBAL = 0
EVAL_TYPE_MODULE = 1
EVAL_FLAG_STRICT = 1 << 3
EVAL_FLAG_COMPILE_ONLY = 1 << 5

TAG_MODULE = -3
TAG_UNDEFINED = 3
TAG_EXCEPTION = 6
UNDEFINED: JSValue = TAG_UNDEFINED << 32

_MAX_ARGS = 4
_ARGV_BYTES = 8 * (_MAX_ARGS + 1)
WASM_PAGE = 65536
_DIFF_PAGE = 4096
_NAME_SLOT = 256
"""Bytes of the transfer buffer reserved for a file or property name; the rest is for text."""
TRANSFER_BYTES = 64 * 1024


def tag_of(value: JSValue) -> int:
    """The signed tag of a JSValue."""
    tag = (value >> 32) & 0xFFFFFFFF
    return tag - (1 << 32) if tag & 0x80000000 else tag


class JSException(Exception):  # noqa: N818 - it is JavaScript's exception, not a Python error
    """A C API call returned ``JS_EXCEPTION``; ``value`` is the thrown JSValue."""

    def __init__(self, value: JSValue) -> None:
        super().__init__("JavaScript exception")
        self.value = value


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Linear memory right after QuickJS and the SDK were initialised, and where things are.

    Restored into a fresh instance of the same module it is that initialised engine again:
    every pointer is an offset into linear memory and every function pointer an index into
    a table that instantiation fills identically. The stack pointer global is back at its
    initial value whenever the host is not inside a call, so memory is all there is to copy,
    and only the pages that differ from a fresh instance's (``pages``: offset, contents).
    """

    size: int
    pages: tuple[tuple[int, bytes], ...]
    rt: int
    ctx: int
    scratch: int
    entry: JSValue
    """The value the snapshot was taken to keep (the SDK's ``install``)."""


def _dirty_runs(image: bytes, pristine: bytes) -> tuple[tuple[int, bytes], ...]:
    runs: list[tuple[int, bytes]] = []
    start = None
    for offset in range(0, len(image), _DIFF_PAGE):
        differs = image[offset : offset + _DIFF_PAGE] != pristine[offset : offset + _DIFF_PAGE]
        if differs and start is None:
            start = offset
        elif not differs and start is not None:
            runs.append((start, image[start:offset]))
            start = None
    if start is not None:
        runs.append((start, image[start:]))
    return tuple(runs)


class GuestPointerError(Exception):
    """The guest handed the host a pointer or length outside its linear memory.

    Only a guest whose memory is already corrupted does that; the host refuses to follow
    it (its fast paths copy with raw pointers, so every guest-provided span is checked).
    """


class QuickJS:
    """One QuickJS runtime and context inside one wasm instance (one store, one run)."""

    def __init__(self, store: wasmtime.Store, instance: wasmtime.Instance) -> None:
        self._store = store
        self._exports = instance.exports(store)
        memory = self._exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self.memory = memory
        self.initial_memory = memory.data_len(store)
        self.rt = 0
        self.ctx = 0
        self._scratch = 0
        self._funcs: dict[str, Call] = {}

    def _base(self, ptr: int, size: int) -> int:
        """The host address of guest span ``[ptr, ptr + size)``, checked against the memory."""
        if ptr < 0 or size < 0 or ptr + size > self.memory.data_len(self._store):
            raise GuestPointerError(f"guest span {ptr:#x}+{size} is outside linear memory")
        return ctypes.addressof(self.memory.data_ptr(self._store).contents)

    def _fn(self, name: str) -> Call:
        func = self._funcs.get(name)
        if func is None:
            item = self._exports[name]
            assert isinstance(item, wasmtime.Func)
            signature = fastcall.SIGNATURES.get(name)
            fast = (
                fastcall.direct_caller(self._store, item, signature)
                if signature and fastcall.ENABLED
                else None
            )
            store = self._store
            func = self._funcs[name] = fast or (lambda *args: item(store, *args))
        return func

    @classmethod
    def boot(cls, store: wasmtime.Store, instance: wasmtime.Instance) -> QuickJS:
        """Run the reactor's constructors and create a runtime."""
        qjs = cls(store, instance)
        qjs._fn("_initialize")()
        qjs.rt = qjs._fn("JS_NewRuntime")()
        # One allocation reused by every call: out-parameters and argv, then a name slot,
        # then a transfer buffer for strings, so most calls need no malloc/free of their own.
        qjs._scratch = qjs._fn("malloc")(_ARGV_BYTES + _NAME_SLOT + TRANSFER_BYTES)
        if not qjs.rt or not qjs._scratch:
            raise MemoryError("QuickJS could not allocate its runtime")
        return qjs

    def snapshot(self, entry: JSValue, pristine: bytes) -> Snapshot:
        """This instance's state, as the pages that differ from ``pristine`` memory."""
        image = bytes(self.memory.read(self._store))
        return Snapshot(
            size=len(image),
            pages=_dirty_runs(image, pristine),
            rt=self.rt,
            ctx=self.ctx,
            scratch=self._scratch,
            entry=entry,
        )

    @classmethod
    def restore(
        cls, store: wasmtime.Store, instance: wasmtime.Instance, snapshot: Snapshot
    ) -> QuickJS:
        """A fresh instance of the same module put back in the snapshot's state."""
        qjs = cls(store, instance)
        pages = snapshot.size // WASM_PAGE - qjs.memory.size(store)
        if pages > 0:
            qjs.memory.grow(store, pages)
        for offset, data in snapshot.pages:
            ctypes.memmove(qjs._base(offset, len(data)) + offset, data, len(data))
        qjs.rt, qjs.ctx, qjs._scratch = snapshot.rt, snapshot.ctx, snapshot.scratch
        qjs.initial_memory = snapshot.size
        return qjs

    def open_context(self) -> None:
        """Create the context, with every standard intrinsic and nothing else (no std, os)."""
        self.ctx = self._fn("JS_NewContext")(self.rt)
        if not self.ctx:
            raise MemoryError("QuickJS could not allocate its context")

    def set_memory_limit(self, limit: int) -> None:
        """Cap the JS heap (malloc'd bytes) at ``limit``."""
        self._fn("JS_SetMemoryLimit")(self.rt, limit)

    def set_stack_size(self, size: int) -> None:
        """Cap the C stack JavaScript may use, measured from the current (outermost) frame."""
        self._fn("JS_SetMaxStackSize")(self.rt, size)

    def _check(self, value: JSValue) -> JSValue:
        if tag_of(value) == TAG_EXCEPTION:
            raise JSException(self._fn("JS_GetException")(self.ctx))
        return value

    def _cstring(self, text: str, *, name: bool = False) -> tuple[int, int, bool]:
        """Put ``text`` NUL-terminated in linear memory: ``(pointer, length, must free)``."""
        data = text.encode("utf-8", "surrogatepass") + b"\0"
        if name and len(data) <= _NAME_SLOT:
            ptr = self._scratch + _ARGV_BYTES
        elif not name and len(data) <= TRANSFER_BYTES:
            ptr = self._scratch + _ARGV_BYTES + _NAME_SLOT
        else:
            ptr = self._fn("malloc")(len(data))
            if not ptr:
                raise MemoryError("QuickJS heap exhausted")
            ctypes.memmove(self._base(ptr, len(data)) + ptr, data, len(data))
            return ptr, len(data) - 1, True
        ctypes.memmove(self._base(ptr, len(data)) + ptr, data, len(data))
        return ptr, len(data) - 1, False

    def _release(self, ptr: int, owned: bool) -> None:
        if owned:
            self._fn("free")(ptr)

    def eval(self, source: str, filename: str, flags: int) -> JSValue:
        """``JS_Eval``: a script's completion value, or a compiled module with COMPILE_ONLY."""
        src, size, src_owned = self._cstring(source)
        name, _, name_owned = self._cstring(filename, name=True)
        try:
            value = self._fn("JS_Eval")(self.ctx, src, size, name, flags)
            return self._check(value)
        finally:
            self._release(src, src_owned)
            self._release(name, name_owned)

    def compile_module(self, source: str, filename: str) -> JSValue:
        """Compile an ES module and resolve its imports; raises on syntax or import errors."""
        module = self.eval(source, filename, EVAL_TYPE_MODULE | EVAL_FLAG_COMPILE_ONLY)
        if tag_of(module) != TAG_MODULE:
            raise RuntimeError("JS_Eval(COMPILE_ONLY) did not return a module")
        if self._fn("JS_ResolveModule")(self.ctx, module) < 0:
            raise JSException(self._fn("JS_GetException")(self.ctx))
        return module

    def evaluate_module(self, module: JSValue) -> tuple[JSValue, JSValue]:
        """Run a compiled module: ``(the evaluation promise, the module namespace)``."""
        module_def = module & 0xFFFFFFFF
        promise = self._check(self._fn("JS_EvalFunction")(self.ctx, module))
        namespace = self._check(self._fn("JS_GetModuleNamespace")(self.ctx, module_def))
        return promise, namespace

    def call(self, func: JSValue, args: Sequence[JSValue] = ()) -> JSValue:
        """Call ``func`` with ``this`` undefined."""
        if len(args) > _MAX_ARGS:
            raise ValueError("too many arguments")
        argv = self._scratch + 8
        if args:
            packed = struct.pack(f"<{len(args)}q", *args)
            ctypes.memmove(self._base(argv, len(packed)) + argv, packed, len(packed))
        result = self._fn("JS_Call")(self.ctx, func, UNDEFINED, len(args), argv)
        return self._check(result)

    def call_with_string(self, func: JSValue, text: str) -> JSValue:
        """Call ``func`` with one string argument."""
        arg = self.new_string(text)
        try:
            return self.call(func, [arg])
        finally:
            self.free(arg)

    def call_for_string(self, func: JSValue, text: str) -> str:
        """Call ``func`` with one string argument and return its result as a string."""
        result = self.call_with_string(func, text)
        try:
            return self.to_str(result)
        finally:
            self.free(result)

    def new_string(self, text: str) -> JSValue:
        """A JS string from UTF-8."""
        ptr, size, owned = self._cstring(text)
        try:
            return self._check(self._fn("JS_NewStringLen")(self.ctx, ptr, size))
        finally:
            self._release(ptr, owned)

    def to_str(self, value: JSValue) -> str:
        """``String(value)``, decoded leniently (lone surrogates become U+FFFD)."""
        ptr = self._fn("JS_ToCStringLen2")(self.ctx, self._scratch, value, 0)
        if not ptr:
            raise JSException(self._fn("JS_GetException")(self.ctx))
        try:
            size = ctypes.c_uint32.from_address(self._base(self._scratch, 4) + self._scratch).value
            data = ctypes.string_at(self._base(ptr, size) + ptr, size)
        finally:
            self._fn("JS_FreeCString")(self.ctx, ptr)
        return data.decode("utf-8", "replace")

    def free(self, value: JSValue) -> None:
        """Drop a reference."""
        self._fn("JS_FreeValue")(self.ctx, value)

    def run_pending_jobs(self) -> int:
        """Run queued jobs (promise reactions) until none is left; returns how many ran.

        A job that throws (out of memory inside a reaction, say) has its exception cleared:
        the promise machinery reports user errors through the main promise instead.
        """
        ran = 0
        while True:
            status = self._fn("JS_ExecutePendingJob")(self.rt, self._scratch)
            if status == 0:
                return ran
            ran += 1
            if status < 0:
                self.free(self._fn("JS_GetException")(self.ctx))
