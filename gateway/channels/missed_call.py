"""The missed-call line: a ring the modem hung up on becomes a "please call back" ticket.

gammu-smsd (HangupCalls = 1, RunOnIncomingCall) runs `hotline missed-call NUMBER` for each
ring. An elderly caller who cannot read or press keys only has to ring; ringing again while
a ticket is open adds a line to its history, never a second ticket. The rule itself is
`gateway.calls.callback_ticket`, shared with a Twilio call that ended unfinished; a ring
while Redis is away waits in the one spool (`gateway.spool`, kind "ring").
"""

from __future__ import annotations

from gateway import calls, tickets
from gateway.context import Hotline
from gateway.phones import try_normalise
from gateway.store import Busy
from gateway.tickets import Ticket

RING = "ring"  # the spool entry of a ring kept while Redis was away: {"From": number}


class NotANumber(ValueError):
    """The modem reported something that is not a phone number (a withheld number, say)."""


def missed_call(hl: Hotline, number: str) -> tuple[Ticket, bool]:
    """The caller's open ticket, or a new callback ticket offered to the team; True if new."""
    phone = try_normalise(number, hl.settings.default_region)
    if phone is None:
        raise NotANumber(number[:40])
    found = calls.callback_ticket(hl, phone)
    if found is None:  # a modem ring waits its turn, so this is not expected
        raise Busy(f"missed-call:{phone}")
    code, new = found
    ticket = tickets.get(hl, code)
    if ticket is None:
        raise LookupError(f"ticket #{code} vanished")
    return ticket, new
