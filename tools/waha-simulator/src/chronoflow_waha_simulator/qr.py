"""The pairing QR as a real PNG (rendered with segno)."""

from __future__ import annotations

import io

import segno

PNG_SCALE = 6
PNG_BORDER = 4


def render_png(value: str) -> bytes:
    """A scannable PNG of ``value``: black modules on white, four-module quiet zone."""
    buffer = io.BytesIO()
    segno.make(value, error="l", micro=False).save(
        buffer, kind="png", scale=PNG_SCALE, border=PNG_BORDER
    )
    return buffer.getvalue()
