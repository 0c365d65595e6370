"""The local spool: entries kept durably while Redis is away and replayed in order, once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gateway import spool


def test_entries_replay_in_order_then_the_spool_is_empty(tmp_path: Path) -> None:
    for i in range(5):
        spool.append(tmp_path, "sms", {"From": "+8613900000001", "Body": str(i)})
    seen: list[str] = []
    assert spool.replay(tmp_path, lambda kind, p: seen.append(p["Body"])) == 5
    assert seen == ["0", "1", "2", "3", "4"]
    assert not spool.pending(tmp_path)
    assert spool.replay(tmp_path, lambda kind, p: seen.append(p["Body"])) == 0


def test_a_failed_entry_stays_with_everything_after_it(tmp_path: Path) -> None:
    for i in range(4):
        spool.append(tmp_path, "sms", {"Body": str(i)})
    seen: list[str] = []

    def flaky(kind: str, payload: dict[str, str]) -> None:
        if payload["Body"] == "2":
            raise ConnectionError("redis went away again")
        seen.append(payload["Body"])

    assert spool.replay(tmp_path, flaky) == 2
    assert spool.pending(tmp_path)
    spool.append(tmp_path, "sms", {"Body": "4"})
    assert spool.replay(tmp_path, lambda kind, p: seen.append(p["Body"])) == 3
    assert seen == ["0", "1", "2", "3", "4"]


def test_a_torn_last_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    spool.append(tmp_path, "voice", {"CallSid": "CA1"})
    with open(spool.path(tmp_path), "a") as fh:
        fh.write('{"kind": "sms", "payl')
    seen: list[str] = []
    assert spool.replay(tmp_path, lambda kind, p: seen.append(kind)) == 1
    assert seen == ["voice"]


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    def write(n: int) -> None:
        for i in range(50):
            spool.append(tmp_path, "sms", {"Body": f"{n}-{i}"})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen: list[str] = []
    spool.replay(tmp_path, lambda kind, p: seen.append(p["Body"]))
    assert sorted(seen) == sorted(f"{n}-{i}" for n in range(4) for i in range(50))
    for n in range(4):  # each writer's own entries stay in its order
        mine = [s for s in seen if s.startswith(f"{n}-")]
        assert mine == [f"{n}-{i}" for i in range(50)]


@pytest.mark.parametrize("kind", ["sms", "voice"])
def test_kind_and_payload_survive_the_round_trip(tmp_path: Path, kind: str) -> None:
    spool.append(tmp_path, kind, {"From": "+8613900000001", "Body": "要药，谢谢"})
    got: list[tuple[str, dict[str, str]]] = []
    spool.replay(tmp_path, lambda k, p: got.append((k, p)))
    assert got == [(kind, {"From": "+8613900000001", "Body": "要药，谢谢"})]
