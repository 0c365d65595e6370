"""`make bench`: every figure beside its same-run baseline, printed as a table and written as JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.embedded import EmbeddedRedis
from gateway.registry_file import import_file
from gateway.settings import ROOT
from gateway.store import KEYS, connect
from tests.bench import webhooks
from tests.bench.app import BASELINE

PUBLIC_URL = "https://hotline.example.org"
TOKEN = "bench-token"


def stranger(i: int) -> str:
    return f"+86137{i:08d}"


def bench_webhooks(env: dict[str, str], tmp: Path, seconds: int, connections: int,
                   count: int) -> dict[str, Any]:
    """/twilio/voice and /twilio/sms under gunicorn, each after a baseline run."""
    # Every other call from someone in the ledger (each in turn), the rest from strangers: the
    # webhook's copy of the ledger must answer both without a Redis round trip.
    known = sorted(connect(env["REDIS_URL"]).smembers(KEYS.people))

    def voice(i: int) -> dict[str, str]:
        caller = known[(i // 2) % len(known)] if i % 2 == 0 else stranger(i)
        return {"CallSid": f"CA{i:032x}", "From": caller, "To": "+8647100000000",
                "CallStatus": "ringing", "AccountSid": "ACbench", "Direction": "inbound"}

    def sms(i: int) -> dict[str, str]:
        return {"MessageSid": f"SM{i:032x}", "From": stranger(i), "To": "+8647100000000",
                "Body": "1 要降压药", "NumMedia": "0", "AccountSid": "ACbench"}

    results: dict[str, Any] = {}
    with webhooks.gunicorn(env) as base:
        for name, route, params in (("voice", "/twilio/voice", voice),
                                    ("sms", "/twilio/sms", sms)):
            base_file, target_file = tmp / f"{name}-baseline.txt", tmp / f"{name}.txt"
            webhooks.write_requests(base_file, PUBLIC_URL, TOKEN, BASELINE, count,
                                    params)
            webhooks.write_requests(target_file, PUBLIC_URL, TOKEN, route, count, params)
            webhooks.wrk(base, base_file, 2, connections)  # warm-up
            baseline = webhooks.wrk(base, base_file, seconds, connections)
            target = webhooks.wrk(base, target_file, seconds, connections)
            results[name] = {
                "baseline": baseline, "endpoint": target,
                "throughput_ratio": target["rps"] / baseline["rps"],
                "p99_ratio": target["p99_ms"] / baseline["p99_ms"],
            }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--seconds", type=int, default=8, help="length of each load run")
    parser.add_argument("--connections", type=int, default=50, help="requests in flight")
    parser.add_argument("--only", nargs="*", help="webhooks, e2e, pacing, render, sip, pool")
    parser.add_argument("--json", default="bench-results.json")
    args = parser.parse_args()
    only = set(args.only or ("webhooks", "e2e", "pacing", "render", "sip", "pool"))
    report: dict[str, Any] = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as scratch:
        tmp = Path(scratch)
        # Each part gets a Redis of its own, so one part's leftovers (thousands of queued offers
        # after the webhook run) never slow the next.
        if "webhooks" in only:
            with fresh_store(tmp / "webhooks") as env:
                report["webhooks"] = bench_webhooks(env, tmp, args.seconds, args.connections,
                                                    count=60000)
        for part in ("e2e", "pacing", "render", "sip", "pool"):
            if part in only:
                with fresh_store(tmp / part) as env:
                    report[part] = _optional(part, env, tmp / part)
    Path(args.json).write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print_table(report)
    print(f"\nwritten to {args.json}")
    return 0


@contextmanager
def fresh_store(folder: Path) -> Iterator[dict[str, str]]:
    """A new embedded Redis with the sample ledger, and the environment pointing at it."""
    server = EmbeddedRedis(folder / "redis")
    server.start()
    try:
        import_file(connect(server.url), ROOT / "gateway" / "sample_registry.csv", "CN")
        yield {**os.environ, "REDIS_URL": server.url, "HOTLINE_DATA_DIR": str(folder / "data"),
               "HOTLINE_PUBLIC_URL": PUBLIC_URL, "TWILIO_AUTH_TOKEN": TOKEN,
               "HOTLINE_SMS_CHANNEL": "outbox", "HOTLINE_SMS_RATE": "0",
               "HOTLINE_INBOUND_LIMIT": "1000000", "HOTLINE_LOG_LEVEL": "WARNING"}
    finally:
        server.stop()


def _optional(part: str, env: dict[str, str], tmp: Path) -> dict[str, Any]:
    import importlib

    module = importlib.import_module(f"tests.bench.{part}")
    result: dict[str, Any] = module.run(env, tmp)
    return result


def print_table(report: dict[str, Any]) -> None:
    rows: list[tuple[str, str, str, str]] = []
    for name, r in report.get("webhooks", {}).items():
        rows.append((f"/twilio/{name} req/s", f"{r['endpoint']['rps']:.0f}",
                     f"{r['baseline']['rps']:.0f}", f"{r['throughput_ratio']:.2f}x"))
        rows.append((f"/twilio/{name} p50 ms", f"{r['endpoint']['p50_ms']:.1f}",
                     f"{r['baseline']['p50_ms']:.1f}",
                     f"{r['endpoint']['p50_ms'] / r['baseline']['p50_ms']:.2f}x"))
        rows.append((f"/twilio/{name} p99 ms", f"{r['endpoint']['p99_ms']:.1f}",
                     f"{r['baseline']['p99_ms']:.1f}", f"{r['p99_ratio']:.2f}x"))
    for part in ("e2e", "pacing", "render", "sip", "pool"):
        for label, (value, base, ratio) in report.get(part, {}).get("rows", {}).items():
            rows.append((label, value, base, ratio))
    width = max((len(r[0]) for r in rows), default=10)
    print(f"{'figure':<{width}}  {'measured':>10}  {'baseline':>10}  {'ratio':>7}")
    for label, value, base, ratio in rows:
        print(f"{label:<{width}}  {value:>10}  {base:>10}  {ratio:>7}")


if __name__ == "__main__":
    sys.exit(main())
