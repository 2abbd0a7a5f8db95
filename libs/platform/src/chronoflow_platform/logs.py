"""Structured logging: one JSON object per line, with service, chrono, run and trace ids."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

chrono_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "chrono_id", default=None
)
run_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line; ``extra=`` fields are kept."""

    _STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        """Render the record and its context as JSON."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if (chrono_id := chrono_id_var.get()) is not None:
            out["chrono_id"] = chrono_id
        if (run_id := run_id_var.get()) is not None:
            out["run_id"] = run_id
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            out["trace_id"] = format(span.trace_id, "032x")
        out.update(
            (k, v)
            for k, v in record.__dict__.items()
            if k not in self._STANDARD and not k.startswith("_")
        )
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(service: str, *, level: str = "INFO", fmt: str = "json") -> None:
    """Route every logger to stdout in the chosen format (``console`` for humans)."""
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Access logs per request are noise at the rates ChronoFlow runs; metrics cover them.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
