"""The SMS dialogue, whichever channel carried the text: who wrote, what they asked, what to answer.

`handle_text` records the text, applies the per-number limit, decides resident or
team member from the registry, makes the change (stored before it returns) and
returns the reply for the sender, or None. Twilio puts that reply in its TwiML
answer; a local SIM channel queues it with `queue_reply`. Messages to anyone
else (the resident told who is coming, the team told it is taken) are jobs in
`workers.followups`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gateway import clock, messages, notices, registry, sms_grammar, texts, tickets
from gateway.context import Hotline
from gateway.lua import Script
from gateway.phones import dial, mask, try_normalise
from gateway.registry import Person
from gateway.sms_grammar import Command
from gateway.store import KEYS, SEEN_TTL, locked
from gateway.tickets import Ticket, TicketError

log = logging.getLogger(__name__)

# Registry roles that use the team's grammar; anyone else (or no one) is a resident.
TEAM_GRAMMAR_ROLES = ("volunteer", "grid_worker", "leader", "head", "duty")
WINDOW = 60  # seconds of the per-number inbound limit
RESIDENT_REPLIES = 3  # replies a resident's number gets per window: a stuck phone costs a few texts
STORED_BODY = 2000  # characters of an inbound text kept on its record
LIST_MAX = 5  # tickets named in a `任务` reply


# An inbound text's one round trip: see conversation.intake.lua.
_INTAKE = Script(__name__, "intake")


def handle_text(hl: Hotline, sender: str, body: str, *, channel: str,
                provider_id: str = "", dedup: str = "") -> str | None:
    """Handle one inbound text and return the reply for its sender (None: no reply).

    `dedup` (a kind such as "sms"): ignore a text whose `provider_id` was handled before.
    A resident's request for help takes one Redis round trip; anything else, a few more.
    """
    # What a channel hands over may carry halves of characters (a lone surrogate in a phone's
    # JSON): dropped here, so that no key or record fails to encode.
    sender, body, provider_id = (texts.whole(x) for x in (sender, body or "", provider_id))
    phone = try_normalise(sender, hl.settings.default_region)
    person = hl.ledger.person(phone) if phone else None
    team = person is not None and person.role in TEAM_GRAMMAR_ROLES
    command = sms_grammar.parse(body or "", volunteer=team)
    new = None
    if phone and not team and command.verb == "open":
        new = tickets.new_ticket(hl, phone, command.category, "sms", person, text=command.text)
    state, count, opted, *opened = _intake(hl, phone or sender[:40], body, channel, provider_id,
                                           dedup, new)
    if state == "dup":
        log.info("sms %s delivered again: ignored", provider_id)
        return None
    if phone is None:
        log.info("sms from an unusable sender ignored (%s)", channel)
        return None
    limit = hl.settings.inbound_limit
    if state == "over":
        if count == limit + 1:
            log.warning("sms from %s over the limit of %d a minute: ignoring", mask(phone), limit)
        return None
    if state == "opened":
        assert new is not None
        ticket = tickets.opened(hl, str(opened[0]), new[1])
        reply = _say(hl, "opened", person, ticket=ticket, known=person is not None,
                     ask_text=not command.text and command.digit == "9")
    else:
        with _one_at_a_time(hl, phone):
            if team:
                assert person is not None
                reply = _team(hl, person, command)
            else:
                reply = _resident(hl, phone, person, command)
    if command.verb in ("stop", "start"):
        opted = command.verb == "stop"
    if command.verb != "stop" and opted:
        return None  # an opted-out number hears nothing but its opt-out confirmation
    if not team and count > RESIDENT_REPLIES and command.verb not in ("stop", "start"):
        return None
    return reply


def _intake(hl: Hotline, sender: str, body: str, channel: str, provider_id: str, dedup: str,
            new: tuple[dict[str, Any], dict[str, str]] | None) -> list[Any]:
    """Run conversation.intake.lua: [state, count, opted out, ticket code when opened]."""
    limit = hl.settings.inbound_limit
    spec, _ = messages.record(messages.inbound(
        sender, sms_grammar.printable(body or "")[:STORED_BODY], channel=channel,
        provider_id=provider_id))
    config: dict[str, Any] = {
        "seen": KEYS.seen(dedup, provider_id) if dedup and provider_id else "",
        "seen_ttl": str(SEEN_TTL), "now": repr(clock.timestamp()),
        "rate": KEYS.rate(f"sms-in:{sender}", int(clock.timestamp() // WINDOW)),
        "rate_ttl": WINDOW * 2, "limit": limit,
        "record_limit": limit * 10,  # past that, a flood is not worth the storage
        "record": spec, "optout": KEYS.optout, "sender": sender,
        "lock": _lock_key(sender), "own": KEYS.tickets_by_caller(sender),
        "since": clock.timestamp() - hl.settings.append_window,
        "ticket": KEYS.ticket("{code}"), "open_statuses": list(tickets.OPEN),
    }
    if new is not None:
        config["open"] = new[0]
    result: list[Any] = _INTAKE(hl.r, intake=config)
    return result


def reply_kind(hl: Hotline, sender: str) -> str:
    """The message kind for queueing a reply: `optout` for the STOP confirmation, else `reply`."""
    phone = try_normalise(sender, hl.settings.default_region) or sender
    return "optout" if messages.opted_out(hl, phone) else "reply"


def queue_reply(hl: Hotline, sender: str, reply: str | None, *, via: str = ""
                ) -> messages.Message | None:
    """Send `handle_text`'s reply through the workers (local SIM channels have no TwiML),
    back through `via`, the sender the text came in by, where it has room."""
    if not reply:
        return None
    phone = try_normalise(sender, hl.settings.default_region) or sender
    return messages.queue_sms(hl, phone, reply, kind=reply_kind(hl, phone), via=via)


def _lock_key(phone: str) -> str:
    """The sender's lock: held while a text of theirs is handled; the intake script checks it."""
    return KEYS.lock(f"sms:{phone}")


@contextmanager
def _one_at_a_time(hl: Hotline, phone: str) -> Iterator[None]:
    """Serialise one number's texts, so two arriving together cannot open two tickets."""
    with locked(hl.r, f"sms:{phone}", ttl=30, wait=5, busy="proceed") as held:
        if not held:
            log.warning("sms lock for %s busy for 5 s: handling anyway", mask(phone))
        yield


def _say(hl: Hotline, name: str, person: Person | None, **context: Any) -> str:
    language = (person.language if person else "") or None
    village = person.village if person else ""
    return texts.sms(hl.settings, name, language=language, village=village, **context)


# --- residents ---------------------------------------------------------------------------

def _resident(hl: Hotline, phone: str, person: Person | None, cmd: Command) -> str:
    if cmd.verb in ("stop", "start"):
        return _opt(hl, phone, person, cmd.verb)
    if cmd.verb != "open":
        return _say(hl, "menu", person)
    current = tickets.open_ticket_of(hl, phone, within=hl.settings.append_window)
    if current is not None:
        # A bare menu digit adds its category's name; a bare 9 ("text follows") adds nothing.
        addition = cmd.text or (_say_label(hl, person, cmd.category) if cmd.digit != "9" else "")
        if addition and addition not in current.text.split("\n"):
            current = tickets.add_text(hl, current.code, phone, addition)  # the taker is told
        return _say(hl, "appended", person, ticket=current)
    ticket = tickets.open_ticket(hl, phone, cmd.category, "sms", text=cmd.text, person=person)
    return _say(hl, "opened", person, ticket=ticket, known=person is not None,
                ask_text=not cmd.text and cmd.digit == "9")


def _say_label(hl: Hotline, person: Person | None, category: str) -> str:
    names: dict[str, str] = texts.labels(hl.settings, person.language if person else None)["category"]
    return names.get(category, "")


def _opt(hl: Hotline, phone: str, person: Person | None, verb: str) -> str:
    out = verb == "stop"
    messages.set_opt_out(hl, phone, out)
    log.info("%s opted %s", mask(phone), "out" if out else "back in")
    return _say(hl, "optout" if out else "optin", person)


# --- the team ------------------------------------------------------------------------------

def _team(hl: Hotline, person: Person, cmd: Command) -> str:
    verb = cmd.verb
    if verb in ("stop", "start"):
        return _opt(hl, person.phone, person, verb)
    if verb == "help":
        return _say(hl, "help_leader" if person.can_lead else "help_volunteer", person)
    if verb == "list":
        return _list(hl, person)
    if verb in ("take", "done", "release"):
        code, why_not = (cmd.code, "") if cmd.code else _only_candidate(hl, person, verb)
        if not code:
            return why_not
        if verb == "take":
            return _take(hl, person, code)
        if verb == "done":
            return _done(hl, person, code)
        return _release(hl, person, code)
    if verb == "assign":
        return _assign(hl, person, cmd)
    if verb in ("notice", "notice_all"):
        return _notice(hl, person, cmd)
    return _say(hl, "help_volunteer", person)


def _only_candidate(hl: Hotline, person: Person, verb: str) -> tuple[str, str]:
    """The one ticket a code-less `接`/`完成`/`退` can mean, else "" and the reply asking which."""
    if verb == "take":
        codes = [c for c in tickets.pending_offers(hl, person.phone)
                 if (t := tickets.get(hl, c)) and t.status in tickets.WAITING]
        none = "no_offer"
    else:
        codes = [t.code for t in tickets.assigned_to(hl, person.phone)]
        none = "nothing_taken"
    if len(codes) == 1:
        return codes[0], ""
    if not codes:
        return "", _say(hl, none, person)
    return "", _say(hl, "which_one", person, codes=codes[:LIST_MAX], verb=verb)


def _lookup(hl: Hotline, person: Person, code: str) -> Ticket | str:
    """The ticket if this person may act on it, else the reply saying why not."""
    ticket = tickets.get(hl, code)
    if ticket is None:
        return _say(hl, "no_ticket", person, code=code)
    if not tickets.may_handle(hl, person, ticket):
        log.info("%s may not handle #%s", mask(person.phone), code)
        return _say(hl, "not_allowed", person, code=code)
    return ticket


def _holder(hl: Hotline, phone: str) -> dict[str, str]:
    who = registry.person(hl.r, phone)
    return {"holder_name": who.name if who else "", "holder_number": dial(phone, hl.settings.default_region)}


def _refusal(hl: Hotline, person: Person, exc: TicketError, code: str) -> str:
    """The reply for a change the ticket's state refused."""
    t = exc.ticket
    if t is None:
        return _say(hl, "no_ticket", person, code=code)
    if exc.reason == "accepted" and t.accepted_by == person.phone:
        return _say(hl, "yours_already", person, ticket=t)
    if exc.reason in ("accepted", "not_yours") and t.accepted_by:
        return _say(hl, "taken_by_other", person, ticket=t, **_holder(hl, t.accepted_by))
    if exc.reason in tickets.WAITING or (exc.reason == "not_yours" and not t.accepted_by):
        return _say(hl, "not_taken", person, ticket=t)
    return _say(hl, "closed_already", person, ticket=t)


def _take(hl: Hotline, person: Person, code: str) -> str:
    found = _lookup(hl, person, code)
    if isinstance(found, str):
        return found
    try:
        ticket = tickets.take(hl, found.code, person.phone)
    except TicketError as exc:
        return _refusal(hl, person, exc, code)
    return _say(hl, "taken", person, ticket=ticket, **_about_caller(hl, ticket))


def _about_caller(hl: Hotline, ticket: Ticket) -> dict[str, str]:
    caller = registry.person(hl.r, ticket.caller)
    return {"address": caller.address if caller else "",
            "caller_number": dial(ticket.caller, hl.settings.default_region)}


def _done(hl: Hotline, person: Person, code: str) -> str:
    ticket = tickets.get(hl, code)
    if ticket is None:
        return _say(hl, "no_ticket", person, code=code)
    allowed = tickets.may_handle(hl, person, ticket)
    if not allowed and ticket.accepted_by != person.phone:
        return _say(hl, "not_allowed", person, code=code)
    try:
        closed = tickets.close(hl, code, person.phone, leader=person.can_lead and allowed)
    except TicketError as exc:
        return _refusal(hl, person, exc, code)
    return _say(hl, "done", person, ticket=closed)


def _release(hl: Hotline, person: Person, code: str) -> str:
    ticket = tickets.get(hl, code)
    if ticket is None:
        return _say(hl, "no_ticket", person, code=code)
    if ticket.accepted_by != person.phone and not tickets.may_handle(hl, person, ticket):
        return _say(hl, "not_allowed", person, code=code)
    try:
        released = tickets.release(hl, code, person.phone)
    except TicketError as exc:
        return _refusal(hl, person, exc, code)
    return _say(hl, "released", person, ticket=released)


def _list(hl: Hotline, person: Person) -> str:
    mine = tickets.assigned_to(hl, person.phone)
    waiting = [t for c in tickets.pending_offers(hl, person.phone)
               if (t := tickets.get(hl, c)) and t.status in tickets.WAITING]
    return _say(hl, "list", person, mine=mine[:LIST_MAX], more=max(0, len(mine) - LIST_MAX),
                waiting=waiting[:LIST_MAX])


def _assign(hl: Hotline, person: Person, cmd: Command) -> str:
    if not person.can_lead:
        return _say(hl, "leaders_only", person)
    if not cmd.arg:
        return _say(hl, "assign_usage", person, code=cmd.code)
    found = _lookup(hl, person, cmd.code)
    if isinstance(found, str):
        return found
    member = _find_assignee(hl, found, cmd.arg)
    if member is None:
        return _say(hl, "no_member", person, who=cmd.arg[:20], ticket=found)
    try:
        ticket = tickets.assign(hl, found.code, member.phone, person.phone)
    except TicketError as exc:
        return _refusal(hl, person, exc, cmd.code)
    return _say(hl, "assigned", person, ticket=ticket, member_name=member.name,
                member_number=dial(member.phone, hl.settings.default_region))


def _find_assignee(hl: Hotline, ticket: Ticket, who: str) -> Person | None:
    """A team member or head of the ticket's village, by name or phone (a triage ticket: by phone)."""
    region = hl.settings.default_region
    compact = "".join(who.split())
    if not ticket.is_triage:
        return (registry.find_member(hl.r, ticket.village_id, who, region)
                or registry.find_member(hl.r, ticket.village_id, compact, region))
    phone = try_normalise(who, region)
    member = registry.person(hl.r, phone) if phone else None
    return member if member and member.role in TEAM_GRAMMAR_ROLES else None


def _notice(hl: Hotline, person: Person, cmd: Command) -> str:
    if not person.can_lead:
        return _say(hl, "leaders_only", person)
    everyone = cmd.verb == "notice_all"
    if not cmd.arg:
        return _say(hl, "notice_usage", person)
    # A township duty officer belongs to no village: their notice goes to every village of
    # their town.
    for_town = not person.village_id and person.role == "duty" and bool(person.town)
    if not person.village_id and not for_town:
        return _say(hl, "no_village", person)
    try:
        if for_town:
            notice = notices.create_for_town(hl, person.town, cmd.arg, author=person.phone,
                                             audience="all" if everyone else "team")
        else:
            notice = notices.create(hl, person.village_id, cmd.arg, author=person.phone,
                                    audience="all" if everyone else "team")
    except notices.NoticeError as exc:
        log.info("notice by %s refused: %s", mask(person.phone), exc)
        return _say(hl, "notice_usage", person)
    return _say(hl, "notice_saved", person, notice=notice, everyone=everyone, town=for_town)
