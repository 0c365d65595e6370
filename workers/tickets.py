"""Ticket jobs: offer a new ticket to its grid's team, escalate it when nobody takes it, remind the taker.

Every job takes the ticket's code, holds the ticket's lock while it works and re-reads the
ticket first, so a job that runs late, twice, or beside another does nothing the ticket
has moved past. Each text is claimed for its purpose (offer:<round>:<number>,
remind:<accepted_at>) in the ticket's message map (store.claim) and settled with its message
id, so a re-run sends nobody a second copy. A claim left pending is taken by the next job
(lease 0): under the ticket's lock, a pending claim can only be a dead job's.

Levels: 0 the grid's team (registry order), 1 the village heads, 2 the township duty list.
A ticket from an unknown caller (triage) goes to everyone on a duty list and stays there.
A round is one life of the offer: releasing a ticket starts a new round, whose timers
replace the old ones.

An offer job sends its own texts (one attempt each, after the lock is let go) rather than
queueing a send job per text: see workers.messages.send_inline.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rq import get_current_job

from gateway import clock, jobs, messages, registry, texts, tickets
from gateway.context import Hotline
from gateway.phones import is_mobile, mask
from gateway.registry import Person
from gateway.store import KEYS, Busy, claim, locked, settle
from gateway.tickets import Ticket, TicketError
from workers.messages import send_inline
from workers.runtime import hotline

log = logging.getLogger(__name__)

TOP = 2  # the last level: the township duty list
DEAD = ("failed", "undelivered", "optedout")


TicketBusy = Busy  # another job holds the ticket: raised, RQ retries this one shortly


@contextmanager
def ticket_lock(hl: Hotline, code: str) -> Iterator[None]:
    with locked(hl.r, f"ticket:{code}", ttl=10, wait=5, busy="raise"):
        yield


def recipients(hl: Hotline, ticket: Ticket, level: int) -> list[Person]:
    """Who is offered the ticket at `level`, in registry order, if they can receive SMS."""
    if ticket.is_triage:
        people = registry.all_duty(hl.r)
    elif level == 0:
        people = registry.team(hl.r, ticket.village_id, ticket.grid)
    elif level == 1:
        people = registry.heads(hl.r, ticket.village_id)
    else:
        people = registry.duty(hl.r, ticket.town) or registry.all_duty(hl.r)
    return [p for p in people if is_mobile(p.phone)]


def top_level(ticket: Ticket) -> int:
    return 0 if ticket.is_triage else TOP


def escalate_after(hl: Hotline, ticket: Ticket) -> float:
    """Seconds without a taker before the next level hears; a third of it for a doctor."""
    after = float(hl.settings.escalate_after)
    return after / 3 if ticket.category == "doctor" else after


def round_of(hl: Hotline, code: str) -> int:
    """How many times the ticket was handed back: each release starts a new round of offers."""
    return rounds(tickets.history(hl, code))


def rounds(history: list[dict[str, Any]]) -> int:
    return sum(1 for entry in history if entry.get("what") == "released")


def offer_ticket(code: str, level: int = 0, round_: int | None = None) -> str:
    """Offer the ticket at `level` (0 when it opens; later levels are the escalation timers)."""
    hl = hotline()
    out: list[str] = []
    with ticket_lock(hl, code):
        result = _offer(hl, code, level, round_, out)
    _send_now(hl, out)
    return result


def offer_new(codes: list[str]) -> str:
    """Offer several new tickets in one job: a burst handed over at once (after an outage, a
    spool replayed) pays RQ's cost per job (a dozen Redis commands) once, not per ticket.

    A ticket whose offer fails gets a job of its own, with the retry policy; the others go on.
    Run again (its worker died), it offers nothing twice: `offer_ticket` is safe to repeat.
    """
    hl = hotline()
    done = 0
    for code in codes:
        try:
            offer_ticket(code)
            done += 1
        except Exception:
            log.exception("#%s: offer failed in a batch; queued on its own", code)
            jobs.offer(hl, code, "alone")
    return f"offered {done} of {len(codes)}"


def offer_next(code: str, mid: str) -> str:
    """Message `mid` about the ticket could not be delivered: offer it to the next person.

    The next person is the first at the ticket's level not offered yet; when there is none
    and no offer at this level can still arrive, the next level is offered at once rather
    than after the escalation timer.
    """
    hl = hotline()
    out: list[str] = []
    with ticket_lock(hl, code):
        result = _offer_next(hl, code, out)
    _send_now(hl, out)
    return result


def _offer_next(hl: Hotline, code: str, out: list[str]) -> str:
    ticket = tickets.get(hl, code)
    if ticket is None or ticket.status not in tickets.WAITING:
        return "nothing to do"
    current = round_of(hl, code)
    level = ticket.escalation_level
    people = recipients(hl, ticket, level)
    offered = set(tickets.offered_to(hl, code))
    fresh = [p for p in people if p.phone not in offered]
    if fresh:
        ticket = tickets.mark_offered(hl, code, [fresh[0].phone], level)
        _offer_once(hl, ticket, fresh[0], level, current, out)
        return "offered to the next member"
    if level < top_level(ticket) and _all_gone(hl, code, people, current):
        log.info("#%s: no offer at level %d can arrive; escalating now", code, level)
        return _offer(hl, code, level + 1, current, out)
    return "others still have the offer"


def _send_now(hl: Hotline, out: list[str]) -> None:
    """This job's first attempt at each text it recorded, in order, with the ticket's lock let
    go (a slow provider must not hold up a volunteer's reply)."""
    for mid in out:
        send_inline(hl, mid)


def remind_assignee(code: str, accepted_at: str) -> str:
    """Remind whoever took the ticket at `accepted_at` if it is still theirs and still open."""
    hl = hotline()
    with ticket_lock(hl, code):
        ticket = tickets.get(hl, code)
        if (ticket is None or ticket.status != "accepted" or ticket.accepted_at is None
                or abs(ticket.accepted_at - float(accepted_at)) > 1e-6):
            return "nothing to do"  # closed, handed back or given to someone else since
        taker = ticket.accepted_by
        purpose = f"remind:{accepted_at}"
        if not is_mobile(taker) or not claim(hl.r, KEYS.ticket_messages(code), purpose,
                                             lease=0):
            return "nothing to do"
        person = registry.person(hl.r, taker)
        body = texts.sms(hl.settings, "reminder", language=_language(person),
                         village=ticket.village, ticket=ticket,
                         hours=round((clock.timestamp() - ticket.accepted_at) / 3600))
        message = messages.queue_sms(hl, taker, body, kind="reminder", ticket=code)
        settle(hl.r, KEYS.ticket_messages(code), purpose, message.id)
        tickets.note(hl, code, "system", "reminded", mask(taker))
        return "reminded"


def _offer(hl: Hotline, code: str, level: int, round_: int | None, out: list[str]) -> str:
    ticket, history, offered_list = tickets.with_offers(hl, code)
    if ticket is None or ticket.status not in tickets.WAITING:
        return "nothing to do"
    current = rounds(history)
    if round_ is not None and round_ != current:
        return "stale"  # a timer from before the ticket was handed back
    top = top_level(ticket)
    if level > top:
        return "nothing to do"
    people = recipients(hl, ticket, level)
    while not people and level < top:  # nobody at this level can get a text: the next one
        level += 1
        people = recipients(hl, ticket, level)
    if not people:
        log.warning("#%s: nobody on the ledger can receive the offer", code)
        return "nobody to offer"
    offered = set(offered_list)  # read under the ticket's lock: no other offer runs meanwhile
    fresh = [p.phone for p in people if p.phone not in offered]
    if fresh:
        try:
            ticket = tickets.mark_offered(hl, code, fresh, max(level, ticket.escalation_level))
        except TicketError:
            return "nothing to do"  # taken in the meantime
    sent = sum(_offer_once(hl, ticket, p, level, current, out) for p in people)
    if level >= ticket.escalation_level and level < top:
        jobs.escalate(hl, code, level + 1, current, escalate_after(hl, ticket), clock.timestamp())
        if _all_gone(hl, code, people, current):
            return _offer(hl, code, level + 1, current, out)
    return f"offered at level {level} to {sent}"


def _offer_once(hl: Hotline, ticket: Ticket, person: Person, level: int, round_: int,
                out: list[str]) -> int:
    """Record the offer (or escalation) text to `person` unless this round already has one.

    Run by a worker, the text is added to `out` for this job to send, its record naming the
    job so that the sweeper leaves it alone while the job lives; else a send job is queued.
    """
    key = KEYS.ticket_messages(ticket.code)
    purpose = f"offer:{round_}:{person.phone}"
    if not claim(hl.r, key, purpose, lease=0):
        return 0
    escalated = level > 0 and not ticket.is_triage
    waited = max(0, int((clock.timestamp() - ticket.created_at) // 60))
    body = texts.sms(hl.settings, "escalation" if escalated else "offer",
                     language=_language(person), village=ticket.village, ticket=ticket,
                     minutes=waited)
    job = get_current_job()
    message = messages.queue_sms(hl, person.phone, body, kind="escalation" if escalated else "offer",
                                 ticket=ticket.code, job=job.id if job else "")
    settle(hl.r, key, purpose, message.id)
    if job and message.status == "queued":
        out.append(message.id)
    return 1


def _all_gone(hl: Hotline, code: str, people: list[Person], round_: int) -> bool:
    """True when every offer of this round to `people` failed, bounced or met an opt-out."""
    key = KEYS.ticket_messages(code)
    for person in people:
        mid = hl.r.hget(key, f"offer:{round_}:{person.phone}")
        message = messages.get(hl, mid) if mid else None
        if message is None or message.status not in DEAD:
            return False
    return bool(people)


def _language(person: Person | None) -> str | None:
    return (person.language if person else "") or None
