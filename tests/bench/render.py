"""Render time of a loudspeaker script per format, beside the plain-text script in the same run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.bench import broadcast_bench


def run(env: dict[str, str], tmp: Path) -> dict[str, Any]:
    seconds = broadcast_bench.run()
    base = seconds["txt"]
    rows = {f"render {fmt} ms (txt as baseline)":
            (f"{s * 1000:.1f}", f"{base * 1000:.1f}", f"{s / base:.0f}x")
            for fmt, s in seconds.items()}
    return {"seconds": seconds, "rows": rows}
