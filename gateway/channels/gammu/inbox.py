"""Texts in from gammu-smsd's inbox/: IN files joined into messages, decoded, handled once, put away.

gammu-smsd writes `IN<date>_<time>_<serial>_<sender>_<part>.txt`, one file per part of a
long text (parts of one text share sender and serial; part 00 comes first). The text is
UTF-16 with a byte-order mark (InboxFormat = unicode, the default) or the system charset
(standard); gammu 1.42 pads UTF-16 files with NULs, so each part is cut at its first NUL.
Handled files move to `processed/` beside inbox/, so the folder only holds what waits.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway import clock, conversation
from gateway.channels import state as channel_state
from gateway.channels.gammu.transport import NAME, spool
from gateway.context import Hotline
from gateway.phones import mask, try_normalise
from gateway.store import KEYS, SEEN_TTL, claim, unclaim

log = logging.getLogger(__name__)

IN_NAME = re.compile(r"^IN(\d{8})_(\d{6})_(\d{2})_(.+)_(\d{2})\.(txt|bin)$")
SETTLE = 2.0  # seconds a file must be left alone before we trust gammu has finished the text


@dataclass(frozen=True)
class Part:
    path: Path
    when: datetime
    serial: str
    sender: str
    seq: int


def parse(path: Path) -> Part | None:
    m = IN_NAME.match(path.name)
    if not m:
        return None
    try:
        when = datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return Part(path, when, m.group(3), m.group(4), int(m.group(5)))


def decode(data: bytes) -> str:
    """One part's text: UTF-16 by its byte-order mark, else UTF-8 (or GB18030); cut at the first NUL."""
    if data[:2] in (b"\xfe\xff", b"\xff\xfe"):
        codec = "utf-16-be" if data[:2] == b"\xfe\xff" else "utf-16-le"
        body = data[2:]
        text = body[: len(body) - len(body) % 2].decode(codec, errors="replace")
    else:
        raw = data.split(b"\x00", 1)[0]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("gb18030", errors="replace")
    return text.split("\x00", 1)[0]


def group(parts: Iterable[Part]) -> list[list[Part]]:
    """Join parts into texts: each part 00 starts one; part n joins the text from the same
    sender and serial that has parts 0..n-1, the one received closest in time."""
    texts: list[list[Part]] = []
    later: list[Part] = []
    for part in sorted(parts, key=lambda p: (p.when, p.path.name)):
        if part.seq == 0:
            texts.append([part])
        else:
            later.append(part)
    for part in sorted(later, key=lambda p: (p.seq, p.when)):
        fits = [t for t in texts if (t[0].sender, t[0].serial) == (part.sender, part.serial)
                and len(t) == part.seq]
        if fits:
            min(fits, key=lambda t: abs((t[0].when - part.when).total_seconds())).append(part)
        else:
            texts.append([part])  # its first part never came: better alone than lost
    return texts


def read_inbox(hl: Hotline, named: Iterable[str] = (), settle: float = SETTLE,
               name: str = NAME) -> int:
    """Handle every complete text waiting in inbox/; returns how many were handled.

    `named` are files gammu-smsd just reported (RunOnReceive): complete, so no settling.
    One reader at a time (a lock file in the spool), so a worker and a RunOnReceive run
    never handle the same text twice.
    """
    root = spool(hl)
    inbox = root / "inbox"
    if not inbox.is_dir():
        channel_state.record_poll(hl, name, f"no inbox folder at {inbox}")
        return 0
    named = {Path(n).name for n in named}
    handled = 0
    with open(root / ".hotline-inbox.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        parts = [p for p in map(parse, sorted(inbox.iterdir())) if p is not None]
        now = clock.timestamp()
        for text in group(parts):
            young = [p for p in text if p.path.name not in named
                     and now - p.path.stat().st_mtime < settle]
            if young:
                continue  # gammu may still be writing its other parts
            handled += _handle(hl, root, text, name)
    channel_state.record_poll(hl, name)
    return handled


def _handle(hl: Hotline, root: Path, text: list[Part], name: str) -> int:
    data = [p.path.read_bytes() for p in text]
    first = text[0]
    ident = f"{first.path.name}:{hashlib.sha1(b''.join(data)).hexdigest()[:16]}"
    if any(p.path.suffix == ".bin" for p in text):
        log.info("gammu: an 8-bit message from %s put aside", mask(first.sender))
        _put_away(root, text)
        return 0
    body = "".join(decode(d) for d in data)
    sender = try_normalise(first.sender, hl.settings.default_region) or first.sender
    if not claim(hl.r, KEYS.seen("gammu-in", ident), ttl=SEEN_TTL):
        _put_away(root, text)  # handled before a crash left the files behind
        return 0
    try:
        reply = conversation.handle_text(hl, sender, body, channel=name,
                                         provider_id=first.path.name)
        conversation.queue_reply(hl, sender, reply, via=name)
    except Exception:
        unclaim(hl.r, KEYS.seen("gammu-in", ident))  # the files stay; the next look tries again
        raise
    log.info("gammu: text from %s (%d part(s)) handled", mask(sender), len(text))
    _put_away(root, text)
    return 1


def _put_away(root: Path, text: list[Part]) -> None:
    done = root / "processed"
    done.mkdir(exist_ok=True)
    for part in text:
        target = done / part.path.name
        n = 1
        while target.exists():  # gammu reuses a name once inbox/ no longer holds it
            target = done / f"{part.path.name}.{n}"
            n += 1
        os.replace(part.path, target)
