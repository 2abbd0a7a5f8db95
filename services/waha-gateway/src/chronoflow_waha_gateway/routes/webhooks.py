"""``POST /waha/webhooks/sessions/status``: WAHA's ``session.status`` events (no API key).

When ``WAHA_WEBHOOK_HMAC_KEY`` is set, only bodies signed with it are accepted (401 otherwise);
the signature is checked on the raw bytes before anything is parsed.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from chronoflow_platform.errors import ApiError
from chronoflow_waha_gateway.deps import FollowerDep, SettingsDep
from chronoflow_waha_gateway.webhooks import (
    HMAC_ALGORITHM_HEADER,
    HMAC_HEADER,
    SESSION_STATUS_EVENT,
    StatusPayload,
    WahaWebhook,
    signature_valid,
)

router = APIRouter(prefix="/waha/webhooks", tags=["waha webhooks"])

#: WAHA's session.status bodies are a few hundred bytes.
MAX_BODY_BYTES = 256 * 1024


@router.post("/sessions/status", summary="WAHA's session.status webhook (HMAC-SHA512 signed)")
async def session_status(
    request: Request, follower: FollowerDep, settings: SettingsDep
) -> dict[str, Any]:
    if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"a webhook body is at most {MAX_BODY_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"a webhook body is at most {MAX_BODY_BYTES} bytes")
    key = settings.webhook_hmac_key
    if key is not None and not signature_valid(
        body,
        key.get_secret_value(),
        request.headers.get(HMAC_HEADER),
        request.headers.get(HMAC_ALGORITHM_HEADER),
    ):
        raise ApiError(
            401, "unauthorized", f"missing or wrong {HMAC_HEADER} (HMAC-SHA512 of the body)"
        )
    try:
        hook = WahaWebhook.model_validate_json(body)
    except ValidationError as exc:
        raise ApiError(
            400, "bad_request", f"not a WAHA webhook: {exc.error_count()} problems"
        ) from exc
    if hook.event != SESSION_STATUS_EVENT:
        return {"accepted": False, "reason": f"{hook.event} is not handled here"}
    try:
        payload = StatusPayload.model_validate(hook.payload)
    except ValidationError as exc:
        raise ApiError(400, "bad_request", "session.status without payload.status") from exc
    at = hook.timestamp / 1000 if hook.timestamp is not None else None
    changed = await follower.on_status(hook.session, payload.status, event_id=hook.id, at=at)
    return {
        "accepted": True,
        "session": hook.session,
        "status": payload.status,
        "channelsChanged": changed,
    }
