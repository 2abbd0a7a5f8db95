"""The function aggregate: saved user JavaScript that FUNCTION chronos run."""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Literal

from pydantic import Field

from chronoflow_contracts.base import CamelModel, Event
from chronoflow_contracts.runs import RunStatus


class FunctionLimits(CamelModel):
    """What one run of a function may use."""

    timeout_ms: int = Field(default=10_000, ge=10, le=300_000)
    max_http: int = Field(default=10, ge=0, le=1000)
    max_messages: int = Field(default=50, ge=0, le=10_000)
    memory_mb: int = Field(default=64, ge=8, le=512)


class FunctionDefinition(CamelModel):
    """Everything a client can set on a function."""

    name: str
    code: str = Field(max_length=256_000)
    runtime: Literal["quickjs-wasm"] = "quickjs-wasm"
    limits: FunctionLimits = Field(default_factory=FunctionLimits)
    channel_id: str | None = None


def code_checksum(code: str) -> str:
    """sha256 of the code, hex: identifies exactly what ran."""
    return hashlib.sha256(code.encode()).hexdigest()


class FunctionEvent(Event):
    """An event of one function."""

    function_id: str


class FunctionSaved(FunctionEvent):
    """A function was created or changed; ``version`` counts saves, ``checksum`` the code."""

    TYPE: ClassVar[str] = "function.saved"
    VERSION: ClassVar[int] = 1
    definition: FunctionDefinition
    function_version: int = Field(ge=1)
    checksum: str


class FunctionDeleted(FunctionEvent):
    """A function was removed."""

    TYPE: ClassVar[str] = "function.deleted"
    VERSION: ClassVar[int] = 1


class FunctionTestRequest(CamelModel):
    """Request on ``names.FUNCTION_TEST_SUBJECT``: run a saved function once, now.

    ``state`` is what ``ctx.state`` starts from (``None``: the function's stored state); the
    run's state is never saved and no run is recorded.
    """

    function_id: str
    extras: dict[str, Any] = Field(default_factory=dict)
    state: dict[str, Any] | None = None


class FunctionTestReply(CamelModel):
    """executor-function's answer to a :class:`FunctionTestRequest`.

    Either ``error`` (``not_found``, ``invalid`` or ``internal``, with a message) or the run:
    ``status`` as a scheduled run would have recorded it, ``result`` as in ``ChronoRun.result``
    and ``state`` as the run left ``ctx.state``.
    """

    error_code: Literal["not_found", "invalid", "internal"] | None = None
    error_message: str | None = None
    function_version: int | None = None
    status: Literal[RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.TIMEOUT] | None = None
    result: dict[str, Any] | None = None
    state: dict[str, Any] | None = None
