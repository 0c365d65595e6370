"""While Redis is away, inbound texts and calls wait in a local append-only file, replayed once on return."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.phones import mask
from gateway.private import open_private, private_dir

log = logging.getLogger(__name__)

FILE = "spool.jsonl"


def path(data_dir: Path) -> Path:
    return data_dir / FILE


def append(data_dir: Path, kind: str, payload: dict[str, str]) -> None:
    """Add one entry durably (fsync) before the caller is answered; safe across processes."""
    private_dir(data_dir)
    line = json.dumps({"kind": kind, "at": time.time(), "payload": payload},
                      ensure_ascii=False) + "\n"
    fd = open_private(path(data_dir), os.O_WRONLY | os.O_APPEND)  # full numbers and bodies: 0600
    with open(fd, "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    log.warning("spooled a %s from %s to replay later", kind, mask(payload.get("From")))


def pending(data_dir: Path) -> bool:
    return path(data_dir).exists() or any(data_dir.glob("spool.replaying-*.jsonl"))


Handler = Callable[[str, dict[str, str]], None]


def replay(data_dir: Path, handle: Handler) -> int:
    """Hand every spooled entry to `handle(kind, payload)`, oldest first; return how many.

    The file is renamed before it is read, so entries spooled meanwhile go to a new file and
    wait for the next replay. An entry whose handling fails stops the replay and stays, with
    everything after it, for next time; `handle` must be idempotent (the webhooks' provider
    ids make it so), since a crash may repeat the entries of an unfinished replay.
    """
    lock_path = data_dir / "spool.lock"
    if not pending(data_dir):
        return 0
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # another process is replaying
        batches = sorted(data_dir.glob("spool.replaying-*.jsonl"))
        if path(data_dir).exists():
            fresh = data_dir / f"spool.replaying-{time.time_ns():020d}.jsonl"
            with open(path(data_dir), "a") as fh:  # wait for a writer in progress
                fcntl.flock(fh, fcntl.LOCK_EX)
                os.rename(path(data_dir), fresh)
                fcntl.flock(fh, fcntl.LOCK_UN)
            batches.append(fresh)
        done = 0
        for batch in batches:
            entries = _read(batch)
            for index, entry in enumerate(entries):
                try:
                    handle(entry["kind"], entry["payload"])
                except Exception:
                    _keep(batch, entries[index:])
                    log.exception("spool replay stopped; %d entries wait", len(entries) - index)
                    return done
                done += 1
            batch.unlink()
        if done:
            log.warning("replayed %d spooled entries", done)
        return done


def _read(batch: Path) -> list[dict[str, Any]]:
    entries = []
    for line in batch.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            log.error("spool: skipped a torn line in %s", batch.name)  # a crash mid-write
    return entries


def _keep(batch: Path, rest: list[dict[str, Any]]) -> None:
    tmp = batch.with_suffix(".tmp")
    with open(open_private(tmp, os.O_WRONLY | os.O_TRUNC), "w", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in rest))
    os.replace(tmp, batch)
