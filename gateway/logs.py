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


def setup(level: str | None = None) -> None:
    """Install the masking filter on every handler of the root logger (idempotent)."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    root.setLevel(level or os.environ.get("HOTLINE_LOG_LEVEL", "INFO"))
    for each in root.handlers:
        if not any(isinstance(f, MaskNumbers) for f in each.filters):
            each.addFilter(MaskNumbers())
