"""Render time of a loudspeaker script per format, for `make bench`: `run()` -> seconds a render."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from gateway import broadcast
from gateway.notices import Notice
from gateway.settings import Settings

# A typical notice: a few sentences with a date, times, a temperature and a phone number.
BODY = ("本周六（2023年1月7日）上午9:00-11:30，在村委会为60岁以上老人接种新冠疫苗，"
        "行动不便的老人可预约上门接种。请带好身份证和医保卡。\n"
        "当天气温-15°C，请注意保暖，排队时保持一米距离。"
        "有问题请拨打队长孙玉梅电话13800000001，或村委会电话0482-8261234。")
ROUNDS = {"txt": 20, "html": 20, "pdf": 5, "wav": 3}


def run(rounds: dict[str, int] | None = None) -> dict[str, float]:
    """Mean seconds per render for each format, after one warm-up render (imports, fonts)."""
    counts = {**ROUNDS, **(rounds or {})}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        notice = Notice(id="1", village_id="v1", village="联合村", title="疫苗接种通知", body=BODY,
                        author="", audience="none", created_at=1672884000.0,
                        village_ids=("v1",), town="归流河镇", language="zh")
        results: dict[str, float] = {}
        for fmt in broadcast.FORMATS:
            broadcast.render(settings, notice, fmt)
            start = time.perf_counter()
            for _ in range(counts[fmt]):
                broadcast.render(settings, notice, fmt)
            results[fmt] = (time.perf_counter() - start) / counts[fmt]
    return results


if __name__ == "__main__":
    for fmt, seconds in run().items():
        print(f"{fmt:<5} {seconds * 1000:8.1f} ms")
