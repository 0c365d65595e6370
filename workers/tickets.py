"""Ticket jobs: offer a new ticket to its grid's team, escalate it when nobody takes it."""

from __future__ import annotations

import logging

from gateway import messages, registry, texts, tickets
from gateway.context import Hotline
from gateway.phones import is_mobile
from gateway.registry import Person
from workers.runtime import hotline

log = logging.getLogger(__name__)


def recipients(hl: Hotline, ticket: tickets.Ticket, level: int) -> list[Person]:
    """Who is offered the ticket at escalation `level`: team, then village heads, then duty list."""
    if ticket.is_triage:
        return registry.all_duty(hl.r)
    if level == 0:
        return registry.team(hl.r, ticket.village_id, ticket.grid)
    if level == 1:
        return registry.heads(hl.r, ticket.village_id)
    return registry.duty(hl.r, ticket.town)


def offer_ticket(code: str, level: int = 0) -> str:
    """Text the offer to everyone at `level` who can receive SMS; safe to run twice."""
    hl = hotline()
    ticket = tickets.get(hl, code)
    if ticket is None or ticket.status not in tickets.WAITING:
        return "nothing to do"
    already = set(tickets.offered_to(hl, code))
    people = [p for p in recipients(hl, ticket, level) if is_mobile(p.phone)]
    fresh = [p for p in people if p.phone not in already]
    tickets.mark_offered(hl, code, [p.phone for p in fresh], level)
    for person in fresh:
        body = texts.sms(hl.settings, "offer", language=person.language or None,
                         village=ticket.village, ticket=ticket)
        messages.queue_sms(hl, person.phone, body, kind="offer", ticket=code)
    return f"offered to {len(fresh)}"
