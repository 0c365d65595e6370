"""The SIP agent's recordings (voicemails, names, prompts by phone): a WAV per sid in HOTLINE_DATA_DIR."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.settings import Settings

SID = re.compile(r"RE[0-9a-f]{32}\Z")  # as the agent names a recording (and as Twilio does)


def folder(settings: Settings) -> Path:
    return settings.data_dir / "recordings"


def path(settings: Settings, sid: str) -> Path | None:
    """Where recording `sid` is (or goes) here; None for anything that is not a sid."""
    return folder(settings) / f"{sid}.wav" if SID.match(sid) else None
