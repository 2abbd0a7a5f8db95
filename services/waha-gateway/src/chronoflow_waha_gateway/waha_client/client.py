"""``WahaClient``: WAHA's API over one ``httpx.AsyncClient``.

The base URL and API key come from the constructor (configuration), never from a caller: every
path is built here from a validated session name. Error messages never carry the API key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from chronoflow_waha_gateway.waha_client.errors import (
    WahaProtocolError,
    WahaTransportError,
    error_for,
)
from chronoflow_waha_gateway.waha_client.models import QRImage, WahaSession

API_KEY_HEADER = "X-Api-Key"
SESSION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Session names this client accepts: enough for WAHA's, and nothing a path could misread."""

_Model = TypeVar("_Model", bound=BaseModel)


def _session_path(session: str) -> str:
    if not SESSION_NAME.fullmatch(session):
        raise ValueError(f"invalid WAHA session name {session!r}: use 1-64 of A-Z a-z 0-9 _ -")
    return quote(session, safe="")


class WahaClient:
    """WAHA's API over one ``httpx.AsyncClient``; use as ``async with`` or call ``aclose()``."""

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr | str | None,
        *,
        timeout: float | httpx.Timeout = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("WAHA base URL must be an absolute http(s) URL")
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._api_key = key or None
        headers = {API_KEY_HEADER: key} if key else {}
        self._http = httpx.AsyncClient(
            base_url=str(url).rstrip("/"),
            headers=headers,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # Sessions

    async def list_sessions(self, *, include_stopped: bool = True) -> list[WahaSession]:
        """Every session (WAHA hides STOPPED ones unless asked: ``include_stopped=False``)."""
        params = {"all": "true"} if include_stopped else None
        response = await self._call("list sessions", "GET", "/api/sessions", params=params)
        body = self._json(response, "list sessions")
        if not isinstance(body, list):
            raise WahaProtocolError("WAHA list sessions: not a list", operation="list sessions")
        return [self._session(item, "list sessions") for item in body]

    async def create_session(
        self, name: str, *, start: bool = True, config: Mapping[str, Any] | None = None
    ) -> WahaSession:
        """Create a session (and start it unless ``start=False``)."""
        _session_path(name)
        body: dict[str, Any] = {"name": name, "start": start}
        if config is not None:
            body["config"] = dict(config)
        return await self._session_call("create session", "POST", "/api/sessions", json=body)

    async def get_session(self, session: str) -> WahaSession:
        """One session; ``WahaNotFoundError`` if there is none."""
        path = f"/api/sessions/{_session_path(session)}"
        return await self._session_call("get session", "GET", path)

    async def update_session(
        self, session: str, *, config: Mapping[str, Any] | None
    ) -> WahaSession:
        """Replace the session's config (WAHA restarts a running session)."""
        path = f"/api/sessions/{_session_path(session)}"
        body = {"config": dict(config) if config is not None else {}}
        return await self._session_call("update session", "PUT", path, json=body)

    async def delete_session(self, session: str) -> None:
        """Stop, log out and delete the session (idempotent)."""
        path = f"/api/sessions/{_session_path(session)}"
        await self._call("delete session", "DELETE", path)

    async def start_session(self, session: str) -> WahaSession:
        """Start the session (idempotent)."""
        return await self._session_action(session, "start")

    async def stop_session(self, session: str) -> WahaSession:
        """Stop the session (idempotent); the account stays linked."""
        return await self._session_action(session, "stop")

    async def logout_session(self, session: str) -> WahaSession:
        """Unlink the account; a running session starts again and asks for a QR scan."""
        return await self._session_action(session, "logout")

    async def restart_session(self, session: str) -> WahaSession:
        """Stop and start the session."""
        return await self._session_action(session, "restart")

    # Pairing

    async def get_qr_png(self, session: str) -> bytes:
        """The pairing QR as PNG bytes (the session must be in SCAN_QR_CODE)."""
        response = await self._qr(session, "image", accept="image/png")
        if not response.content.startswith(b"\x89PNG"):
            raise WahaProtocolError("WAHA get QR: not a PNG", operation="get QR")
        return response.content

    async def get_qr_base64(self, session: str) -> QRImage:
        """The pairing QR as ``{mimetype, data}`` with base64 data."""
        response = await self._qr(session, "image", accept="application/json")
        return self._model(QRImage, self._json(response, "get QR"), "get QR")

    async def get_qr_value(self, session: str) -> str:
        """The raw text the QR encodes, to render it elsewhere."""
        response = await self._qr(session, "raw", accept="application/json")
        body = self._json(response, "get QR")
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            raise WahaProtocolError("WAHA get QR: no value", operation="get QR")
        return str(body["value"])

    async def request_code(
        self, session: str, phone_number: str, *, method: str | None = None
    ) -> str:
        """A code to link the session by phone number instead of a QR scan."""
        path = f"/api/{_session_path(session)}/auth/request-code"
        body: dict[str, Any] = {"phoneNumber": phone_number}
        if method is not None:
            body["method"] = method
        response = await self._call("request code", "POST", path, json=body, session=session)
        answer = self._json(response, "request code")
        if not isinstance(answer, dict) or not isinstance(answer.get("code"), str):
            raise WahaProtocolError("WAHA request code: no code", operation="request code")
        return str(answer["code"])

    # Messages

    async def send_text(
        self, session: str, chat_id: str, text: str, *, link_preview: bool | None = None
    ) -> str:
        """Send ``text`` to ``chat_id`` (``<digits>@c.us`` or a ``...@g.us`` group); its id.

        Raises ``WahaSessionNotWorkingError`` when the session is not WORKING and
        ``WahaRateLimitedError`` (with ``retry_after``) when WhatsApp throttles.
        """
        _session_path(session)
        if not chat_id:
            raise ValueError("chat_id is empty")
        body: dict[str, Any] = {"session": session, "chatId": chat_id, "text": text}
        if link_preview is not None:
            body["linkPreview"] = link_preview
        response = await self._call("sendText", "POST", "/api/sendText", json=body, session=session)
        answer = self._json(response, "sendText")
        message_id = answer.get("id") if isinstance(answer, dict) else None
        if isinstance(message_id, dict):  # some engines answer the raw id object
            message_id = message_id.get("_serialized")
        if not isinstance(message_id, str) or not message_id:
            raise WahaProtocolError("WAHA sendText: no message id", operation="sendText")
        return message_id

    # Plumbing

    async def _session_action(self, session: str, action: str) -> WahaSession:
        path = f"/api/sessions/{_session_path(session)}/{action}"
        return await self._session_call(f"{action} session", "POST", path)

    async def _session_call(
        self, operation: str, method: str, path: str, *, json: Any = None
    ) -> WahaSession:
        response = await self._call(operation, method, path, json=json)
        return self._session(self._json(response, operation), operation)

    async def _qr(self, session: str, fmt: str, *, accept: str) -> httpx.Response:
        path = f"/api/{_session_path(session)}/auth/qr"
        return await self._call(
            "get QR",
            "GET",
            path,
            params={"format": fmt},
            headers={"Accept": accept},
            session=session,
        )

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        session: str | None = None,
    ) -> httpx.Response:
        """Send one request; any failure becomes a ``WahaError`` (``session``: session-scoped)."""
        try:
            response = await self._http.request(
                method, path, json=json, params=params, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise WahaTransportError(
                f"WAHA {operation}: timed out ({type(exc).__name__})", operation=operation
            ) from exc
        except httpx.HTTPError as exc:
            reason = self._redact(str(exc)) or type(exc).__name__
            raise WahaTransportError(
                f"WAHA {operation}: no answer ({reason})", operation=operation
            ) from exc
        if response.is_success:
            return response
        raise error_for(
            operation,
            response.status_code,
            self._redact(response.text),
            retry_after=response.headers.get("Retry-After"),
            session=session,
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _json(self, response: httpx.Response, operation: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise WahaProtocolError(
                f"WAHA {operation}: answer is not JSON", operation=operation
            ) from exc

    def _session(self, body: Any, operation: str) -> WahaSession:
        return self._model(WahaSession, body, operation)

    @staticmethod
    def _model(model: type[_Model], body: Any, operation: str) -> _Model:
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            raise WahaProtocolError(
                f"WAHA {operation}: unexpected answer ({exc.error_count()} problems)",
                operation=operation,
            ) from exc
