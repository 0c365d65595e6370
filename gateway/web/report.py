"""The daily report page (日报告) with its charts, and its CSV export for the town office."""

from __future__ import annotations

from datetime import date, timedelta

from flask import Response, render_template, request
from flask.typing import ResponseReturnValue

from gateway import reports
from gateway.texts import labels
from gateway.tickets import TRIAGE
from gateway.web.auth import user
from gateway.web.pages import words
from gateway.web.scope import chosen_village, villages_for
from gateway.web.site import bp, hotline

TREND_DAYS = 7
MAX_EXPORT_DAYS = 92


def _day(raw: str | None) -> date:
    today = reports.today(hotline())
    try:
        asked = date.fromisoformat(raw) if raw else today
    except ValueError:
        return today
    return min(asked, today)


def _scope() -> list[str] | None:
    account = user()
    vid = chosen_village(account, request.args.get("village"))
    if vid is None:
        return None  # an admin asking for everything: every village and the triage row
    return [vid]


def _named(rows: list[reports.VillageDay]) -> list[reports.VillageDay]:
    triage = str(words()["report"]["triage_row"])
    for row in rows:
        if row.village_id == TRIAGE:
            row.village = triage
    return rows


@bp.get("/report")
def report() -> ResponseReturnValue:
    account = user()
    day = _day(request.args.get("day"))
    scope = _scope()
    rows = _named(reports.daily(hotline(), day, scope))
    total = reports.total(day, rows, str(words()["report"]["total"]))
    trend = reports.trend(hotline(), day, TREND_DAYS, scope)
    return render_template(
        "report.html", day=day, rows=rows, total=total, trend=trend,
        villages=villages_for(account), vid=request.args.get("village", ""),
        previous=day - timedelta(days=1), following=day + timedelta(days=1),
        today=reports.today(hotline()), trend_max=max([1, *(max(o, s) for _, o, s in trend)]),
        category_max=max([1, *total.by_category.values()]))


@bp.get("/report.csv")
def report_csv() -> ResponseReturnValue:
    """One row per village and day; `days` exports that many days ending with `day`."""
    day = _day(request.args.get("day"))
    try:
        days = min(max(int(request.args.get("days", "1")), 1), MAX_EXPORT_DAYS)
    except ValueError:
        days = 1
    scope = _scope()
    rows: list[reports.VillageDay] = []
    for back in range(days - 1, -1, -1):
        rows += _named(reports.daily(hotline(), day - timedelta(days=back), scope))
    names = labels(hotline().settings)
    headers = dict(words()["report"]["columns"])
    headers |= {f"category_{k}": v for k, v in names["category"].items()}
    headers |= {f"status_{k}": v for k, v in names["status"].items()}
    body = reports.to_csv(rows, headers)
    name = f"report-{day.isoformat()}" + (f"-{days}d" if days > 1 else "") + ".csv"
    return Response(body.encode("utf-8"), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={name}"})
