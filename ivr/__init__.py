"""The voice menu as plain functions: call state and input in, the next step out; no Redis, no Flask."""

from ivr.machine import (
    MENU,
    Call,
    Event,
    Gather,
    Hangup,
    Prompt,
    Record,
    Step,
    TicketIntent,
    advance,
    event_of,
    opened,
    start,
)
from ivr.twiml import Spoken, render

__all__ = ["MENU", "Call", "Event", "Gather", "Hangup", "Prompt", "Record", "Spoken", "Step",
           "TicketIntent", "advance", "event_of", "opened", "render", "start"]
