"""Checks HTTP exchanges and webhooks against WAHA's published OpenAPI document.

Needs the ``contract`` extra (openapi-core). The document (``shared/waha/openapi.json``, beside
the repository) is read as published, with three mechanical corrections, each one needed for
WAHA's own documented payloads to validate (``defects`` counts them, and a test keeps them
honest):

1. ``nullable: true`` is OpenAPI 3.0 vocabulary that a 3.1 document ignores, so a ``null`` the
   authors allowed would fail; it becomes ``"null"`` among the allowed types.
2. ``required: true`` inside a property schema is not JSON Schema (``required`` is a list on the
   object); it is dropped.
3. A schema declaring ``type: object`` whose ``enum`` holds only strings (the envelope's
   ``event``) describes a string: WAHA sends ``"event": "session.status"``.

The document itself is not run through openapi-spec-validator: besides the above it carries
``default: null`` on non-nullable fields, which says nothing about the exchanges we check.
WAHA documents no error responses, so a 4xx/5xx is checked only for being a JSON object.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.exceptions import OpenAPIError
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_core.templating.responses.exceptions import ResponseNotFound
from werkzeug.datastructures import Headers, ImmutableMultiDict


def openapi_path(repo_root: Path) -> Path:
    """Where the document lives: ``../shared/waha/openapi.json`` from the repository root."""
    return repo_root / ".." / "shared" / "waha" / "openapi.json"


class ContractViolationError(AssertionError):
    """An exchange that WAHA's contract does not allow."""


def _walk(node: Any, visit: Any) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in list(node.values()):
            _walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk(value, visit)


def _is_string_enum_object(node: dict[str, Any]) -> bool:
    enum = node.get("enum")
    return (
        node.get("type") == "object"
        and isinstance(enum, list)
        and bool(enum)
        and all(isinstance(v, str) for v in enum)
    )


def defects(document: Mapping[str, Any]) -> dict[str, int]:
    """How often each corrected defect occurs in ``document``."""
    counts = {"nullable": 0, "boolean_required": 0, "string_enum_typed_object": 0}

    def visit(node: dict[str, Any]) -> None:
        counts["nullable"] += node.get("nullable") is True
        counts["string_enum_typed_object"] += _is_string_enum_object(node)
        properties = node.get("properties")
        if isinstance(properties, dict):
            counts["boolean_required"] += sum(
                isinstance(p, dict) and isinstance(p.get("required"), bool)
                for p in properties.values()
            )

    _walk(document, visit)
    return counts


def corrected(document: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``document`` with the three corrections above applied."""
    fixed: dict[str, Any] = copy.deepcopy(dict(document))

    def visit(node: dict[str, Any]) -> None:
        properties = node.get("properties")
        if isinstance(properties, dict):
            for prop in properties.values():
                if isinstance(prop, dict) and isinstance(prop.get("required"), bool):
                    del prop["required"]
        if _is_string_enum_object(node):
            node["type"] = "string"
        if node.get("nullable") is True:
            del node["nullable"]
            kind = node.get("type")
            if isinstance(kind, str):
                node["type"] = [kind, "null"]
            else:
                outer: dict[str, Any] = {
                    k: node.pop(k) for k in ("default", "description", "example") if k in node
                }
                inner = dict(node)
                node.clear()
                node.update(outer, anyOf=[inner, {"type": "null"}])

    _walk(fixed, visit)
    return fixed


@dataclass(frozen=True)
class CheckedExchange:
    """One request/response pair that passed the contract."""

    operation_id: str
    method: str
    path: str
    status_code: int
    response_documented: bool


class _Request:
    """An ``httpx.Request`` as openapi-core's ``Request`` protocol."""

    def __init__(self, request: httpx.Request) -> None:
        url = request.url
        self.host_url = f"{url.scheme}://{url.netloc.decode()}"
        self.path = url.path
        self.method = request.method.lower()
        self.body: bytes | None = request.content or None
        self.content_type = request.headers.get("content-type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(url.params.multi_items())),
            header=Headers(list(request.headers.multi_items())),
            cookie=ImmutableMultiDict(),
        )


class _WebhookRequest:
    """A webhook POST as openapi-core's ``WebhookRequest`` protocol."""

    def __init__(self, name: str, body: bytes, headers: Mapping[str, str]) -> None:
        self.name = name
        self.method = "post"
        self.body: bytes | None = body
        self.content_type = headers.get("content-type", "application/json")
        self.parameters = RequestParameters(header=Headers(dict(headers)))


class _Response:
    """An ``httpx.Response`` (already read) as openapi-core's ``Response`` protocol."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.content_type = response.headers.get("content-type", "")
        self.headers = Headers(list(response.headers.multi_items()))
        self.data: bytes | None = response.content


def _binary(data: bytes) -> str:
    # ``type: string, format: binary`` in a 3.1 document: the bytes stand for the string.
    return data.decode("latin-1")


class WahaContract:
    """WAHA's operations and webhooks, ready to check exchanges against."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        # None skips validating the document itself (openapi-core documents it; its type hint
        # omits it): WAHA's document has defects ``corrected`` does not need to fix.
        config = Config(
            spec_validator_cls=None,  # type: ignore[arg-type]
            extra_media_type_deserializers={"image/png": _binary},
        )
        self._api = OpenAPI.from_dict(corrected(document), config=config)
        self._finder = APICallPathFinder(self._api.spec)

    def operation_id(self, method: str, url: httpx.URL) -> str | None:
        """The ``operationId`` WAHA gives to ``method url``, or None if WAHA has no such route."""
        try:
            found = self._finder.find(method.lower(), str(url.copy_with(query=None)))
        except OpenAPIError:
            return None
        return str(found.operation["operationId"])

    def check_request(self, request: httpx.Request) -> str:
        """The request's operation id; ``ContractViolationError`` if WAHA would refuse it."""
        operation = self.operation_id(request.method, request.url)
        if operation is None:
            raise ContractViolationError(
                f"WAHA has no operation {request.method} {request.url.path}"
            )
        try:
            self._api.validate_request(_Request(request))
        except OpenAPIError as exc:
            raise ContractViolationError(f"{operation} request: {_explain(exc)}") from exc
        return operation

    def check(self, request: httpx.Request, response: httpx.Response) -> CheckedExchange:
        """Check both sides of one exchange (``response`` must have been read)."""
        operation = self.check_request(request)
        documented = True
        try:
            self._api.validate_response(_Request(request), _Response(response))
        except ResponseNotFound as exc:
            if response.status_code < 400:
                raise ContractViolationError(
                    f"{operation}: undocumented {response.status_code}"
                ) from exc
            documented = False
            try:
                body = json.loads(response.content)
            except ValueError as err:
                raise ContractViolationError(f"{operation}: error body is not JSON") from err
            if not isinstance(body, dict):
                raise ContractViolationError(
                    f"{operation}: error body is not a JSON object"
                ) from exc
        except OpenAPIError as exc:
            raise ContractViolationError(
                f"{operation} {response.status_code} response: {_explain(exc)}"
            ) from exc
        return CheckedExchange(
            operation_id=operation,
            method=request.method,
            path=request.url.path,
            status_code=response.status_code,
            response_documented=documented,
        )

    def check_webhook(self, event: str, body: bytes, headers: Mapping[str, str]) -> None:
        """Check a webhook POST WAHA sends for ``event`` (e.g. ``session.status``)."""
        try:
            self._api.validate_webhook_request(_WebhookRequest(event, body, headers))
        except OpenAPIError as exc:
            raise ContractViolationError(f"webhook {event}: {_explain(exc)}") from exc


def _explain(exc: Exception) -> str:
    cause = exc.__cause__
    details = getattr(cause, "schema_errors", None) or getattr(exc, "schema_errors", None)
    if details:
        return f"{exc}: " + "; ".join(str(getattr(e, "message", e)) for e in details)
    return f"{type(exc).__name__}: {exc}" + (f" ({cause})" if cause else "")


@functools.cache
def load_contract(path: Path) -> WahaContract:
    """The contract at ``path``, parsed once per process."""
    return WahaContract(json.loads(path.read_text(encoding="utf-8")))


class ContractCheckingTransport(httpx.AsyncBaseTransport):
    """Wraps a transport and checks every exchange through it against the contract.

    Paths WAHA does not define but the simulator adds (``/_sim``, ``/ready``) pass unchecked.
    A violation raises ``ContractViolationError`` from the request that caused it.
    """

    def __init__(
        self,
        contract: WahaContract,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        unchecked_prefixes: tuple[str, ...] = ("/_sim", "/ready"),
    ) -> None:
        self._contract = contract
        self._inner = inner or httpx.AsyncHTTPTransport()
        self._unchecked = unchecked_prefixes
        self.exchanges: list[CheckedExchange] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Forward, read the answer, check both sides."""
        response = await self._inner.handle_async_request(request)
        await response.aread()
        if not request.url.path.startswith(self._unchecked):
            self.exchanges.append(self._contract.check(request, response))
        return response

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()
