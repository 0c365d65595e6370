"""The ticket board and a ticket's own page: filter, read the history, assign, close or cancel."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from gateway import clock, registry, tickets
from gateway.registry import Person
from gateway.tickets import Ticket, TicketError
from gateway.web.auth import user
from gateway.web.pages import say, words
from gateway.web.scope import chosen_village, ticket_or_404, villages_for
from gateway.web.site import bp, hotline

LIMIT = 300
REFRESH_SECONDS = 10
# Age filters: (youngest, oldest) in seconds since the ticket was opened.
AGES: dict[str, tuple[float | None, float | None]] = {
    "1h": (None, 3600), "24h": (None, 86400), "7d": (None, 7 * 86400),
    "over1h": (3600, None), "over24h": (86400, None),
}
STATUS_FILTERS = ("open", "waiting", *tickets.STATUSES, "all")


def _matches_status(t: Ticket, wanted: str) -> bool:
    if wanted == "open":
        return t.status in tickets.OPEN
    if wanted == "waiting":
        return t.status in tickets.WAITING
    return wanted == "all" or t.status == wanted


def _find(args: dict[str, str]) -> list[Ticket]:
    account = user()
    vid = chosen_village(account, args.get("village"))
    status = args.get("status") or "open"
    exact = status if status in tickets.STATUSES else None
    since = until = None
    if args.get("age") in AGES:
        youngest, oldest = AGES[args["age"]]
        now = clock.timestamp()
        until = now - youngest if youngest is not None else None
        since = now - oldest if oldest is not None else None
    found = tickets.list_tickets(hotline(), village_id=vid, status=exact, since=since,
                                 until=until, limit=LIMIT)
    grid, category = args.get("grid"), args.get("category")
    return [t for t in found
            if account.sees(t.village_id) and _matches_status(t, status)
            and (not grid or t.grid == grid) and (not category or t.category == category)]


@bp.get("/board")
def board() -> ResponseReturnValue:
    account = user()
    args = {k: v for k, v in request.args.items() if k in ("village", "grid", "category", "status",
                                                           "age") and v}
    args.setdefault("status", "open")
    found = _find(args)
    names = {t.accepted_by: n for t in found if t.accepted_by
             and (n := registry.person(hotline().r, t.accepted_by))}
    if request.args.get("partial"):
        return render_template("_board_rows.html", found=found, names=names)
    villages = villages_for(account)
    vid = chosen_village(account, args.get("village"))
    grids = next((v.grids for v in villages if v.id == vid), ())
    return render_template("board.html", found=found, names=names, villages=villages, grids=grids,
                           args=args, ages=AGES, status_filters=STATUS_FILTERS,
                           refresh=REFRESH_SECONDS, limit=LIMIT)


def _candidates(t: Ticket) -> list[Person]:
    """Who the ticket can be given to: the village's teams and heads (triage: duty and all teams)."""
    r = hotline().r
    if t.is_triage:
        people = registry.all_duty(r)
        for v in registry.villages(r):
            people += registry.village_team(r, v.id) + registry.heads(r, v.id)
    else:
        people = registry.village_team(r, t.village_id) + registry.heads(r, t.village_id)
    return list({p.phone: p for p in people}.values())


@bp.get("/tickets/<code>")
def ticket(code: str) -> ResponseReturnValue:
    account = user()
    t = ticket_or_404(account, code)
    hl = hotline()
    return render_template(
        "ticket.html", t=t, history=tickets.history(hl, t.code),
        caller=registry.person(hl.r, t.caller),
        holder=registry.person(hl.r, t.accepted_by) if t.accepted_by else None,
        offered=registry.people(hl.r, tickets.offered_to(hl, t.code)),
        candidates=_candidates(t))


def _back(t: Ticket) -> ResponseReturnValue:
    return redirect(url_for("dashboard.ticket", code=t.code))


def _refused(exc: TicketError, t: Ticket) -> ResponseReturnValue:
    reason = words()["ticket"]["refusals"].get(exc.reason, exc.reason)
    say("refused", "error", code=t.code, reason=reason)
    return _back(t)


@bp.post("/tickets/<code>/assign")
def assign(code: str) -> ResponseReturnValue:
    account = user()
    t = ticket_or_404(account, code)
    to = request.form.get("to", "")
    member = next((p for p in _candidates(t) if p.phone == to), None)
    if member is None:
        say("pick_member", "error")
        return _back(t)
    hl = hotline()
    try:
        tickets.assign(hl, t.code, member.phone, account.name)
    except TicketError as exc:
        return _refused(exc, t)
    # The member is told by SMS, the resident who is coming, the previous holder that it moved
    # (the jobs that follow an assignment, queued by tickets.assign).
    say("assigned", code=t.code, name=member.name)
    return _back(t)


@bp.post("/tickets/<code>/close")
def close(code: str) -> ResponseReturnValue:
    account = user()
    t = ticket_or_404(account, code)
    hl = hotline()
    try:
        tickets.close(hl, t.code, account.name, leader=True)
    except TicketError as exc:
        return _refused(exc, t)
    say("closed", code=t.code)
    return _back(t)


@bp.post("/tickets/<code>/cancel")
def cancel(code: str) -> ResponseReturnValue:
    account = user()
    t = ticket_or_404(account, code)
    note = " ".join(request.form.get("note", "").split())[:200]
    try:
        tickets.cancel(hotline(), t.code, account.name, note)
    except TicketError as exc:
        return _refused(exc, t)
    say("cancelled", code=t.code)
    return _back(t)
