"""The loudspeaker script of a notice in each format, made by gateway.broadcast, for the notice pages."""

from __future__ import annotations

from gateway import broadcast
from gateway.context import Hotline
from gateway.notices import Notice

FORMATS = ("html", "pdf", "wav", "txt")


class BroadcastUnavailable(Exception):
    """The format cannot be made here (the renderer or a system package it needs is missing)."""


def render_broadcast(hl: Hotline, notice: Notice, fmt: str) -> tuple[bytes, str]:
    """The bytes and media type of `notice` as `fmt`; the print page links back to the dashboard."""
    try:
        data = broadcast.render(hl.settings, notice, fmt, dashboard=fmt == "html")
    except (broadcast.MissingPackage, ValueError) as exc:
        raise BroadcastUnavailable(str(exc)) from None
    return data, broadcast.MEDIA_TYPES[fmt]
