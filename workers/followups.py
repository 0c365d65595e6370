"""After a take or a close by SMS: tell the resident who is coming (or thank them) and tell the team.

Jobs take ids and re-read the ticket, so a job that runs late does nothing the
ticket has since made wrong (a take released, a reassignment). Each message is
claimed once per recipient and per take or close, so a re-run sends nobody twice.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from gateway import messages, registry, texts, tickets
from gateway.context import Hotline
from gateway.phones import dial, is_mobile, mask
from gateway.registry import Person
from gateway.store import KEYS, SEEN_TTL, claim, unclaim
from gateway.tickets import Ticket
from workers.runtime import hotline

log = logging.getLogger(__name__)


def taken(code: str, taker: str, by: str = "", previous: str = "") -> str:
    """`taker` has the ticket (took it, or `by` assigned it, maybe from `previous`)."""
    hl = hotline()
    ticket = tickets.get(hl, code)
    if ticket is None or ticket.accepted_by != taker or ticket.status not in ("accepted", "done"):
        return "nothing to do"  # released or reassigned since: a later job tells the new story
    stamp = f"taken:{ticket.accepted_at}"
    helper = registry.person(hl.r, taker)
    who = {"helper_name": helper.name if helper else "",
           "helper_number": dial(taker, hl.settings.default_region)}
    sent = _tell_resident(hl, ticket, "coming", stamp, **who)
    if by and by != taker:
        leader = registry.person(hl.r, by)
        caller = registry.person(hl.r, ticket.caller)
        sent += _send(hl, ticket, taker, "assigned_to_you", "assigned", stamp,
                      leader_name=leader.name if leader else dial(by, hl.settings.default_region),
                      address=caller.address if caller else "",
                      caller_number=dial(ticket.caller, hl.settings.default_region))
    if previous and previous != taker:
        sent += _send(hl, ticket, previous, "reassigned", "reassigned", stamp, **who)
    for phone in tickets.offered_to(hl, code):
        if phone not in (taker, by, previous):
            sent += _send(hl, ticket, phone, "taken_note", "taken", stamp, **who)
    return f"sent {sent}"


def done(code: str, by: str = "") -> str:
    """The ticket is closed: thank the resident; tell whoever else was still on it."""
    hl = hotline()
    ticket = tickets.get(hl, code)
    if ticket is None or ticket.status != "done":
        return "nothing to do"
    stamp = f"done:{ticket.closed_at}"
    closer = registry.person(hl.r, by) if by else None
    sent = _tell_resident(hl, ticket, "thanks", stamp)
    # Someone else closed it: the assignee (or, if none, everyone offered) need not go.
    others = [ticket.accepted_by] if ticket.accepted_by else tickets.offered_to(hl, code)
    for phone in others:
        if phone != by:
            sent += _send(hl, ticket, phone, "closed_note", "closed", stamp,
                          closer_name=closer.name if closer else "")
    return f"sent {sent}"


def added(code: str, addition: str) -> str:
    """The resident wrote more while someone has the ticket: pass it on to them."""
    hl = hotline()
    ticket = tickets.get(hl, code)
    if ticket is None or ticket.status != "accepted" or not ticket.accepted_by:
        return "nothing to do"
    digest = hashlib.sha1(addition.encode("utf-8")).hexdigest()[:12]
    stamp = f"added:{ticket.accepted_at}:{digest}"
    sent = _send(hl, ticket, ticket.accepted_by, "added_note", "added", stamp, addition=addition)
    return f"sent {sent}"


def _tell_resident(hl: Hotline, ticket: Ticket, name: str, stamp: str, **context: Any) -> int:
    """Text the resident, or their contact person when the resident has no mobile."""
    if is_mobile(ticket.caller):
        return _send(hl, ticket, ticket.caller, name, name, stamp, language=ticket.language,
                     **context)
    resident = registry.person(hl.r, ticket.caller)
    contact = resident.contact_phone if resident else ""
    if contact and is_mobile(contact):
        return _send(hl, ticket, contact, f"{name}_contact", name, stamp,
                     language=ticket.language, resident_name=resident.name if resident else "",
                     **context)
    log.info("#%s: %s has no mobile and no contact with one; nobody to tell", ticket.code,
             mask(ticket.caller))
    return 0


def _send(hl: Hotline, ticket: Ticket, to: str, template: str, kind: str, stamp: str, *,
          language: str | None = None, **context: Any) -> int:
    """Queue one text about the ticket, once per recipient and event."""
    if not is_mobile(to):
        return 0
    person: Person | None = registry.person(hl.r, to)
    lang = language or (person.language if person else "") or None
    body = texts.sms(hl.settings, template, language=lang, village=ticket.village, ticket=ticket,
                     **context)
    once = KEYS.seen("followup", f"{ticket.code}:{stamp}:{template}:{to}")
    if not claim(hl.r, once, ttl=SEEN_TTL):
        return 0  # a re-run: already queued
    try:
        messages.queue_sms(hl, to, body, kind=kind, ticket=ticket.code)
    except Exception:
        unclaim(hl.r, once)  # not queued: let the job's retry queue it
        raise
    tickets.note(hl, ticket.code, "system", f"sms:{kind}", mask(to))
    return 1
