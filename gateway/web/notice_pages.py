"""Notices on the dashboard: write one, send it by SMS, open it for the loudspeaker (print, PDF, audio)."""

from __future__ import annotations

import logging
from collections import Counter

from flask import Response, abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from gateway import messages, notices
from gateway.notices import Notice, NoticeError
from gateway.web.auth import user
from gateway.web.broadcast_files import FORMATS, BroadcastUnavailable, render_broadcast
from gateway.web.headers import PRINT_PAGE_CSP
from gateway.web.pages import say
from gateway.web.scope import chosen_village, villages_for
from gateway.web.site import bp, hotline

log = logging.getLogger(__name__)

BODY_MAX = 2000
TITLE_MAX = 60


def _notice_or_404(nid: str) -> Notice:
    notice = notices.get(hotline(), nid) if nid.isdigit() else None
    if notice is None or not user().sees(notice.village_id):
        abort(404)
    return notice


@bp.get("/notices")
def notice_list() -> ResponseReturnValue:
    account = user()
    vid = chosen_village(account, request.args.get("village"), allow_triage=False)
    found = [n for n in notices.list_notices(hotline(), vid) if account.sees(n.village_id)]
    return render_template("notices.html", found=found, villages=villages_for(account),
                           audiences=notices.AUDIENCES, vid=vid or "")


@bp.post("/notices")
def notice_create() -> ResponseReturnValue:
    account = user()
    vid = chosen_village(account, request.form.get("village"), allow_triage=False)
    audience = request.form.get("audience", "none")
    body = request.form.get("body", "").strip()[:BODY_MAX]
    title = " ".join(request.form.get("title", "").split())[:TITLE_MAX]
    if not vid or not account.sees(vid):
        say("pick_village", "error")
        return redirect(url_for("dashboard.notice_list"))
    try:
        notice = notices.create(hotline(), vid, body, title=title, author=account.name,
                                audience=audience if audience in notices.AUDIENCES else "none")
    except NoticeError:
        say("notice_empty", "error")
        return redirect(url_for("dashboard.notice_list"))
    say("notice_made" if notice.audience == "none" else "notice_sending", id=notice.id)
    return redirect(url_for("dashboard.notice", nid=notice.id))


@bp.get("/notices/<nid>")
def notice(nid: str) -> ResponseReturnValue:
    found = _notice_or_404(nid)
    hl = hotline()
    statuses: Counter[str] = Counter()
    for mid in notices.deliveries(hl, found.id).values():
        m = messages.get(hl, mid)
        statuses[m.status if m else "queued"] += 1
    return render_template("notice.html", n=found, statuses=statuses,
                           audiences=[a for a in notices.AUDIENCES if a != "none"],
                           formats=FORMATS)


@bp.post("/notices/<nid>/send")
def notice_send(nid: str) -> ResponseReturnValue:
    found = _notice_or_404(nid)
    audience = request.form.get("audience", "")
    if audience not in notices.AUDIENCES or audience == "none":
        say("pick_audience", "error")
    else:
        count = notices.send(hotline(), found.id, audience)
        say("notice_sent", count=count)
    return redirect(url_for("dashboard.notice", nid=found.id))


@bp.get("/notices/<nid>/broadcast.<fmt>")
def notice_broadcast(nid: str, fmt: str) -> ResponseReturnValue:
    """The loudspeaker script as a print page (html), PDF, audio (wav) or plain text."""
    found = _notice_or_404(nid)
    if fmt not in FORMATS:
        abort(404)
    try:
        data, mimetype = render_broadcast(hotline(), found, fmt)
    except BroadcastUnavailable as exc:
        log.warning("broadcast %s of notice %s unavailable: %s", fmt, found.id, exc)
        say("broadcast_unavailable", "error", fmt=fmt.upper())
        return redirect(url_for("dashboard.notice", nid=found.id))
    response = Response(data, mimetype=mimetype)
    if fmt == "html":
        response.headers["Content-Security-Policy"] = PRINT_PAGE_CSP
    if fmt in ("pdf", "wav") and request.args.get("download"):
        response.headers["Content-Disposition"] = f"attachment; filename=notice-{found.id}.{fmt}"
    return response
