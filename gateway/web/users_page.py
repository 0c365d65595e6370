"""Accounts on the dashboard (admin only): who can log in, add one, remove one."""

from __future__ import annotations

from flask import abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from gateway import accounts, registry
from gateway.accounts import AccountError
from gateway.web.auth import user
from gateway.web.pages import say
from gateway.web.site import bp, hotline


def _admin() -> None:
    if not user().is_admin:
        abort(404)


@bp.get("/users")
def users() -> ResponseReturnValue:
    _admin()
    hl = hotline()
    return render_template("users.html", found=accounts.list_users(hl),
                           villages=registry.villages(hl.r), roles=accounts.ROLES,
                           minimum=accounts.MIN_PASSWORD)


@bp.post("/users")
def user_add() -> ResponseReturnValue:
    _admin()
    form = request.form
    try:
        made = accounts.create(hotline(), form.get("name", ""), form.get("role", ""),
                               form.get("password", ""), form.get("village") or None)
    except AccountError as exc:
        say(f"account_{exc.reason}", "error")
    else:
        say("account_made", name=made.name)
    return redirect(url_for("dashboard.users"))


@bp.post("/users/<name>/delete")
def user_delete(name: str) -> ResponseReturnValue:
    _admin()
    if name == user().name:
        say("account_self", "error")
    elif accounts.delete(hotline(), name):
        say("account_removed", name=name)
    return redirect(url_for("dashboard.users"))
