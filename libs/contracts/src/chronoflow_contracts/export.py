"""Export JSON Schemas of every event and an AsyncAPI 3.0 document for downstream subscribers.

``python -m chronoflow_contracts.export docs/contracts`` (``make docs``) writes them; a test
fails when the committed files drift from the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from chronoflow_contracts import names
from chronoflow_contracts.base import Event
from chronoflow_contracts.registry import EVENT_MODELS

# Where each event type is published, as an AsyncAPI channel address (``{id}`` parameters).
_CHANNELS: dict[str, tuple[str, str, str]] = {
    "chrono": ("cf.events.chrono.{chronoId}", names.EVENTS_STREAM, "Events of one chrono"),
    "channel": ("cf.events.channel.{channelId}", names.EVENTS_STREAM, "Events of one channel"),
    "function": (
        "cf.events.function.{functionId}",
        names.EVENTS_STREAM,
        "Events of one function",
    ),
    "runs": ("cf.runs.{chronoId}", names.RUNS_STREAM, "Run and schedule history of one chrono"),
    "work": ("cf.work.{target}", names.WORK_STREAM, "RunRequested queue of one executor"),
}


def _channel_of(model: type[Event]) -> str:
    if model.TYPE == "run.requested":
        return "work"
    if model.TYPE.startswith(("run.", "schedule.")):
        return "runs"
    return model.TYPE.split(".", 1)[0]


def schema_of(model: type[Event]) -> dict[str, Any]:
    """The JSON Schema of one event as it appears on the wire (camelCase)."""
    schema = model.model_json_schema(by_alias=True, mode="serialization")
    schema["$id"] = f"https://chronoflow.dev/schemas/{model.TYPE}.v{model.VERSION}.json"
    schema["x-event-type"] = model.TYPE
    schema["x-event-version"] = model.VERSION
    return schema


def asyncapi() -> dict[str, Any]:
    """An AsyncAPI 3.0 document: one channel per subject family, one message per event type."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for key, (address, stream, description) in _CHANNELS.items():
        params = {
            p.strip("{}"): {"description": "id token"} for p in address.split(".") if "{" in p
        }
        channels[key] = {
            "address": address,
            "description": f"{description} (JetStream stream {stream}).",
            "parameters": params,
            "messages": {},
        }
    for model in EVENT_MODELS:
        msg_name = f"{model.TYPE}.v{model.VERSION}"
        messages[msg_name] = {
            "name": model.TYPE,
            "title": model.__name__,
            "summary": (model.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json",
            "headers": {
                "type": "object",
                "properties": {
                    names.EVENT_TYPE: {"const": model.TYPE},
                    names.EVENT_VERSION: {"const": str(model.VERSION)},
                    names.MSG_ID: {"type": "string"},
                    names.TRACEPARENT: {"type": "string"},
                },
            },
            "payload": {"$ref": f"schemas/{model.TYPE}.v{model.VERSION}.json"},
        }
        channel = _channel_of(model)
        channels[channel]["messages"][msg_name] = {"$ref": f"#/components/messages/{msg_name}"}
    for key in channels:
        operations[f"receive-{key}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{key}"},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "ChronoFlow events",
            "version": "1",
            "description": (
                "Events ChronoFlow publishes on NATS JetStream. Every message carries "
                f"{names.EVENT_TYPE} and {names.EVENT_VERSION} headers; bodies are JSON "
                "(camelCase). Adding an optional field keeps a version; anything else is a "
                "new version."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def render() -> dict[str, str]:
    """Every exported file: relative path -> content."""
    files = {
        f"schemas/{m.TYPE}.v{m.VERSION}.json": json.dumps(schema_of(m), indent=2, sort_keys=True)
        + "\n"
        for m in EVENT_MODELS
    }
    files["asyncapi.json"] = json.dumps(asyncapi(), indent=2, sort_keys=True) + "\n"
    return files


def main(argv: list[str] | None = None) -> None:
    """Write the exported files under the directory given (default ``docs/contracts``)."""
    out = Path((argv or sys.argv[1:] or ["docs/contracts"])[0])
    for rel, content in render().items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    print(f"wrote {len(render())} files under {out}")


if __name__ == "__main__":
    main()
