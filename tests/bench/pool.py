"""The pool: a town notice to 5,000 residents over 4 phones at 5/s each, with caps that make it wait.

Each of four villages has 1,250 residents and its own phone (the fake SMS Gateway for
Android), at 5 messages a second with a cap per "hour"; the hour is HOTLINE_CAP_HOUR = 60 s
here (time is a setting), so the caps stop every phone several times. Two `hotline worker`
processes send. The baseline is the physical limit: the soonest the last message could go
at those rates under those caps, each phone carrying its village's share, with sends
starting the moment the notice is sent. Measured at the phones, where a carrier counts:
the most any phone got in any second and in any hour, and the workers' memory.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Any

from gateway import notices
from gateway.context import Hotline
from gateway.registry_file import import_file
from gateway.senders import Sender
from gateway.settings import Settings
from tests.fake_android import FakePhone
from tests.fake_twilio import start_worker, stop_workers, wait_until

VILLAGES = ("东风村", "红旗村", "前进村", "胜利村")
PER_VILLAGE = 1250
RATE = 5.0
PER_HOUR = 250
HOUR = 60.0


def ledger(path: Path) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["乡镇(街道)", "村(社区)", "网格", "姓名", "电话", "身份", "类别", "地址",
                      "联系人", "语言", "备注"])
        for v, village in enumerate(VILLAGES):
            for i in range(PER_VILLAGE):
                out.writerow(["胜利镇", village, "第一网格", f"居民{v}-{i}", f"+86159{v}{i:07d}",
                              "居民", "", f"{village}{i}号", "", "", ""])
    return path


def pool(folder: Path, phones: list[FakePhone]) -> Path:
    tables = []
    for n, (village, phone) in enumerate(zip(VILLAGES, phones, strict=True)):
        (folder / f"p{n}.pw").write_text(phone.password)
        (folder / f"p{n}.key").write_text(phone.signing_key)
        tables.append(f'[[sender]]\nname = "phone{n}"\nkind = "android"\nurl = "{phone.url}"\n'
                      f'user = "{phone.user}"\npassword_file = "p{n}.pw"\n'
                      f'signing_key_file = "p{n}.key"\npoll = 0\nvillages = ["{village}"]\n'
                      f'rate = {RATE}\nper_hour = {PER_HOUR}\n')
    path = folder / "channels.toml"
    path.write_text("\n".join(tables), encoding="utf-8")
    return path


def physical_limit(count: int, per_hour: int = PER_HOUR) -> float:
    """Seconds from the first send to the last of `count` through one sender: `per_hour` per
    any hour, one every 1/RATE seconds."""
    windows, rest = divmod(count - 1, per_hour)
    return windows * HOUR + rest / RATE


def busiest(times: list[float], window: float) -> int:
    return max((sum(1 for t in times if start <= t < start + window) for start in times), default=0)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run(env: dict[str, str], tmp: Path) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    phones = [FakePhone(password=f"pw{n}", signing_key=f"key{n}").start() for n in range(4)]
    for phone in phones:
        phone.auto_send = False  # no webhooks are registered: the phones only take messages
    wenv = {k: v for k, v in os.environ.items() if not k.startswith(("HOTLINE_", "TWILIO_"))}
    wenv.update({"REDIS_URL": env["REDIS_URL"], "HOTLINE_DATA_DIR": str(tmp / "data"),
                 "HOTLINE_CHANNELS_FILE": str(pool(tmp, phones)), "HOTLINE_CAP_HOUR": str(HOUR),
                 "HOTLINE_LOG_LEVEL": "INFO", "HOTLINE_SWEEP_AFTER": "30"})
    hl = Hotline(Settings.from_env(wenv))
    report = import_file(hl.r, ledger(tmp / "ledger.csv"), "CN")
    assert report.ok, report.errors
    total = PER_VILLAGE * len(VILLAGES)
    workers = [start_worker(wenv, tmp) for _ in range(2)]
    try:
        time.sleep(3)  # the workers are up and idle
        memory_before = [rss_kb(w.pid) for w in workers]
        notice = notices.create_for_town(hl, "胜利镇", "通知：明天上午九点在村委会接种疫苗。",
                                         audience="residents")
        start = time.time()
        notices.queue_send(hl, notice.id, "residents")
        limit = physical_limit(PER_VILLAGE)
        # what a notice may use: each cap less the share kept for the help texts (the default)
        kept = Sender("phone", "android", per_hour=PER_HOUR).kept(PER_HOUR)
        notice_limit = physical_limit(PER_VILLAGE, PER_HOUR - kept)
        wait_until(lambda: sum(len(p.arrived) for p in phones) >= total,
                   timeout=limit * 3 + 120, every=0.5)
        last = max(max(p.arrived) for p in phones)
        memory_after = [rss_kb(w.pid) for w in workers]
    finally:
        stop_workers(workers)
        for phone in phones:
            phone.stop()
    took = last - start
    logs = "".join(p.read_text(errors="replace") for p in tmp.glob("worker-*.log"))
    runs = logs.count("Successfully completed job send-")
    late = logs.count("booked again")
    per_second = max(busiest(sorted(p.arrived), 1.0) for p in phones)
    per_hour = max(busiest(sorted(p.arrived), HOUR) for p in phones)
    twice = sum(len(p.arrived) - len(set(p.accepted)) for p in phones)
    return {"messages": total, "senders": len(phones), "rate_per_sender": RATE,
            "cap_per_hour": PER_HOUR, "hour_s": HOUR, "took_s": took,
            "physical_limit_s": limit, "ratio": limit / took,
            "kept_for_help_texts_per_hour": kept, "notice_limit_s": notice_limit,
            "ratio_to_notice_limit": notice_limit / took,
            "send_jobs_per_message": runs / total, "turns_missed": late,
            "most_in_a_second": per_second, "most_in_an_hour": per_hour, "sent_twice": twice,
            "worker_rss_kb_before": memory_before, "worker_rss_kb_after": memory_after,
            "rows": {
                "pool 5,000 over 4 (physical limit as baseline) s":
                    (f"{took:.0f}", f"{limit:.0f}", f"{limit / took:.2f}x"),
                f"pool the same, against the caps less {kept}/h kept for help texts s":
                    (f"{took:.0f}", f"{notice_limit:.0f}", f"{notice_limit / took:.2f}x"),
                "pool most per phone in any 1 s / in any hour":
                    (f"{per_second} / {per_hour}", f"{RATE:.0f} / {PER_HOUR}", ""),
                "pool send jobs per message / turns missed":
                    (f"{runs / total:.2f} / {late}", "1.00 / 0", ""),
                "pool worker memory MB before -> after":
                    (" ".join(f"{a / 1024:.0f}" for a in memory_after),
                     " ".join(f"{b / 1024:.0f}" for b in memory_before), ""),
            }}
