"""Which villages and tickets an account sees: all for an admin, its own village's for a head or leader."""

from __future__ import annotations

from flask import abort

from gateway import registry, tickets
from gateway.accounts import User
from gateway.web.site import hotline


def villages_for(account: User) -> list[registry.Village]:
    """The villages this account sees: all for an admin, its own for a head or leader."""
    hl = hotline()
    if account.is_admin:
        return registry.villages(hl.r)
    own = registry.village(hl.r, account.village_id)
    return [own] if own else []


def chosen_village(account: User, asked: str | None, *, allow_triage: bool = True) -> str | None:
    """The village id a filter asks for, limited to what the account sees (None: all it sees)."""
    if not account.is_admin:
        return account.village_id or "-"  # "-" matches nothing: an account with no village sees none
    if not asked:
        return None
    if asked == tickets.TRIAGE:
        return tickets.TRIAGE if allow_triage else None
    found = registry.find_village(hotline().r, asked)
    return found.id if found else None


def ticket_or_404(account: User, code: str) -> tickets.Ticket:
    """The ticket if this account may see it; the same 404 whether it exists or not."""
    ticket = tickets.get(hotline(), code) if code.isdigit() else None
    if ticket is None or not account.sees(ticket.village_id):
        abort(404)
    return ticket
