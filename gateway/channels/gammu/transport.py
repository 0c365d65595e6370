"""SMS out through gammu-smsd's files backend: one OUT file per message, written atomically.

Naming follows gammu-smsd-files(7), `OUT<priority><date>_<time>_<serial>_<recipient>_<note>.txt`,
with the message's creation time and our record id as the note, so the name is the same on a
retry (nothing is handed over twice) and gammu sends in priority, then creation, order. The
text is UTF-16 with a byte-order mark (what `OutboxFormat = unicode` writes): gammu-smsd reads
that whatever the OutboxFormat or locale, so Chinese never depends on the daemon's LANG.
The status follows the file: moved to sent/ means sent, to error/ means failed.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from gateway import clock, messages
from gateway.channels import Channel, Receipt, TransportError
from gateway.channels import state as channel_state
from gateway.context import Hotline
from gateway.messages import Message
from gateway.phones import mask
from gateway.store import KEYS

log = logging.getLogger(__name__)

NAME = "gammu"
FOLDERS = ("inbox", "outbox", "sent", "error")
RECIPIENT = re.compile(r"^\+?\d{3,20}$")
# Someone is waiting on these; a notice to a whole village can go after them.
URGENT = ("reply", "offer", "call_code", "optout")
STALL_AFTER = 300  # seconds an OUT file may wait before /healthz calls the modem stalled
HALF_WRITTEN_AFTER = 60  # seconds after which a temporary OUT file is a dead writer's


def spool(hl: Hotline) -> Path:
    if hl.settings.gammu_spool is None:
        raise TransportError("GAMMU_SPOOL is not set", permanent=True, code="config")
    return Path(hl.settings.gammu_spool)


def priority(kind: str) -> str:
    return "B" if kind in URGENT else "D" if kind == "notice" else "C"


def out_name(message: Message) -> str:
    when = time.strftime("%Y%m%d_%H%M%S", time.gmtime(message.created_at))
    return f"OUT{priority(message.kind)}{when}_00_{message.to}_{message.id}.txt"


def encode(text: str) -> bytes:
    return b"\xfe\xff" + text.encode("utf-16-be")


class GammuChannel(Channel):
    name = NAME
    records_state = True

    def __init__(self, hl: Hotline) -> None:
        self.hl = hl
        self.root = spool(hl)

    def send(self, message: Message) -> Receipt:
        if not RECIPIENT.match(message.to):
            raise TransportError(f"not a number gammu can send to: {mask(message.to)}",
                                 permanent=True, code="number")
        name = out_name(message)
        try:
            self._hand_over(name, message.body)
        except OSError as exc:
            error = f"cannot write to {self.root / 'outbox'}: {exc.strerror or exc}"
            channel_state.record_failure(self.hl, self.name, error)
            raise TransportError(error, permanent=False, code="spool") from None
        channel_state.record_ok(self.hl, self.name)
        log.info("gammu: %s to %s handed over as %s", message.id, mask(message.to), name[:4])
        return Receipt(provider_id=name, status="sending")

    def lookup(self, message: Message) -> Receipt | None:
        """Whether gammu already has this message (asked before a second attempt)."""
        name = out_name(message)
        for folder, status in (("outbox", "sending"), ("sent", "sent"), ("error", "failed")):
            if (self.root / folder / name).exists():
                return Receipt(provider_id=name, status=status)
        return None

    def _hand_over(self, name: str, body: str) -> None:
        outbox = self.root / "outbox"
        if not outbox.is_dir():
            raise FileNotFoundError(2, "the outbox folder is missing (is the spool mounted?)")
        if any((self.root / folder / name).exists() for folder in ("outbox", "sent", "error")):
            return  # handed over before (a retry after a crash): never a second copy
        # gammu-smsd skips names starting with a dot, so it never reads a half-written file.
        tmp = outbox / f".{name}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(encode(body))
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o664)  # gammu-smsd (group gammu) moves it to sent/ or error/
            os.rename(tmp, outbox / name)
        finally:
            tmp.unlink(missing_ok=True)


def follow_status(hl: Hotline, name: str = NAME) -> int:
    """Move messages gammu has dealt with to sent or failed; returns how many changed."""
    root = spool(hl)
    _clear_half_written(root / "outbox")
    changed = 0
    for mid in hl.r.zrange(KEYS.messages_by_status("sending"), 0, -1):
        message = messages.get(hl, mid)
        if message is None or message.channel != name or not message.provider_id:
            continue
        if (root / "sent" / message.provider_id).exists():
            messages.record_delivery(hl, message.provider_id, "sent")
        elif (root / "error" / message.provider_id).exists():
            messages.record_delivery(hl, message.provider_id, "failed",
                                     error="gammu-smsd could not send it (see its log)")
        else:
            continue
        changed += 1
    return changed


def _clear_half_written(outbox: Path) -> None:
    """A worker killed while writing leaves its hidden temporary file (gammu never reads it);
    the message itself was handed over again since, by this worker or another sender."""
    now = time.time()
    for tmp in outbox.glob(".OUT*.tmp"):
        try:
            if now - tmp.stat().st_mtime > HALF_WRITTEN_AFTER:
                tmp.unlink()
        except FileNotFoundError:
            pass


@dataclass(frozen=True)
class Backlog:
    state: str
    waiting: int
    oldest_age: float | None
    errors: int


def backlog(hl: Hotline) -> Backlog:
    """What waits in the outbox for the modem, and whether it seems to be moving."""
    root = spool(hl)
    outbox = root / "outbox"
    if not outbox.is_dir():
        return Backlog("down", 0, None, 0)
    now = clock.timestamp()
    ages = [now - p.stat().st_mtime for p in outbox.glob("OUT*")]
    oldest = max(ages) if ages else None
    error_dir = root / "error"
    errors = sum(1 for _ in error_dir.glob("OUT*")) if error_dir.is_dir() else 0
    stalled = oldest is not None and oldest > STALL_AFTER
    return Backlog("stalled" if stalled else "ok", len(ages), oldest, errors)
