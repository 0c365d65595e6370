"""Logging set-up shared by web, workers and CLI: one format, and no phone number ever written in full."""

from __future__ import annotations

import logging
import os

from gateway.phones import mask_text

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class MaskNumbers(logging.Filter):
    """Masks phone-like digit runs in every record, whatever code logged it (RQ, werkzeug, ours)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def setup(level: str | None = None, *, default: str = "INFO") -> None:
    """Install the masking filter on every handler of the root logger (idempotent).

    The level is `level` if given, else HOTLINE_LOG_LEVEL (read here only), else `default`:
    INFO for the services, WARNING for one-shot CLI commands (they speak only when wrong).
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    root.setLevel(level or os.environ.get("HOTLINE_LOG_LEVEL") or default)
    for each in root.handlers:
        if not any(isinstance(f, MaskNumbers) for f in each.filters):
            each.addFilter(MaskNumbers())
