"""The missed-call line: a ring the modem hung up on becomes a "please call back" ticket.

gammu-smsd (HangupCalls = 1, RunOnIncomingCall) runs `hotline missed-call NUMBER` for each
ring. An elderly caller who cannot read or press keys only has to ring; ringing again while
a ticket is open adds a line to its history, never a second ticket.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from pathlib import Path

from gateway import messages, texts, tickets
from gateway.context import Hotline
from gateway.phones import is_mobile, mask, try_normalise
from gateway.private import open_private, private_dir
from gateway.store import KEYS
from gateway.tickets import Ticket

log = logging.getLogger(__name__)


PENDING = "missed_calls.jsonl"  # rings kept while Redis was away, under HOTLINE_DATA_DIR


class NotANumber(ValueError):
    """The modem reported something that is not a phone number (a withheld number, say)."""


def missed_call(hl: Hotline, number: str) -> tuple[Ticket, bool]:
    """The caller's open ticket, or a new callback ticket offered to the team; True if new."""
    phone = try_normalise(number, hl.settings.default_region)
    if phone is None:
        raise NotANumber(number[:40])
    # Rings come seconds apart and each runs its own process: one at a time per caller.
    with hl.r.lock(KEYS.lock(f"missed-call:{phone}"), timeout=30, blocking_timeout=20):
        existing = tickets.open_ticket_of(hl, phone)
        if existing is not None:
            tickets.note(hl, existing.code, phone, "rang", "missed_call")
            log.info("missed call from %s: already has #%s", mask(phone), existing.code)
            return existing, False
        ticket = tickets.open_ticket(hl, phone, "callback", "missed_call")
    log.info("missed call from %s: callback ticket #%s", mask(phone), ticket.code)
    _text_code(hl, ticket)
    return ticket, True


def _text_code(hl: Hotline, ticket: Ticket) -> None:
    """A mobile caller gets the code by SMS, over the hotline's own channel (a landline cannot)."""
    if not is_mobile(ticket.caller):
        return
    body = texts.sms(hl.settings, "call_code", language=ticket.language or None,
                     village=ticket.village, ticket=ticket)
    messages.queue_sms(hl, ticket.caller, body, kind="call_code", ticket=ticket.code)


def keep_for_later(data_dir: Path, number: str) -> None:
    """Redis is away: write the ring down (fsynced) for `replay_pending` to handle later."""
    private_dir(data_dir)
    line = json.dumps({"number": number[:40], "at": time.time()}) + "\n"
    with open(open_private(data_dir / PENDING, os.O_WRONLY | os.O_APPEND), "a",
              encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
    log.warning("missed call kept for later: redis is away")


def replay_pending(hl: Hotline) -> int:
    """Handle rings kept while Redis was away; returns how many. A ring that fails stays."""
    path = hl.settings.data_dir / PENDING
    if not path.exists():
        return 0
    with open(path, "r+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        lines = [line for line in fh.read().splitlines() if line.strip()]
        done = 0
        try:
            for line in lines:
                with contextlib.suppress(ValueError):  # nothing to call back, or a torn line
                    missed_call(hl, str(json.loads(line).get("number", "")))
                done += 1
        finally:
            fh.seek(0)
            fh.truncate()
            fh.write("".join(f"{rest}\n" for rest in lines[done:]))
            fh.flush()
            os.fsync(fh.fileno())
    if done:
        log.warning("replayed %d missed call(s) kept while redis was away", done)
    return done
