"""The phone simulator: call the hotline on an on-screen keypad, text as anyone, read each phone's inbox.

On only when HOTLINE_SIMULATOR is (as under `hotline run`). The browser talks to the
JSON routes here; they play Twilio's part through `sim_driver`, so the real, signed
webhooks do the work. Outbound texts are read from the outbox channel; the replies
that ride back in a webhook's TwiML are kept in a short simulator log per number.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, abort, current_app, render_template, request, url_for
from flask.typing import ResponseReturnValue

from gateway import clock, jsonsafe, messages, registry
from gateway.phones import try_normalise
from gateway.registry import Person
from gateway.store import KEYS
from gateway.web.auth import user
from gateway.web.sim_driver import Driver, SimulatorError, Turn, new_sid
from gateway.web.site import hotline

log = logging.getLogger(__name__)

bp = Blueprint("simulator", __name__, url_prefix="/simulator")

# The number the simulated phones dial when no Twilio number is configured.
SIM_HOTLINE = "+864828000000"
LOG_KEEP = 100
LOG_TTL = 7 * 86400
BODY_MAX = 480
STATUS_PATH = "/twilio/status"


@bp.before_request
def only_when_on() -> None:
    if not hotline().settings.simulator:
        abort(404)


def _driver() -> Driver:
    settings = hotline().settings
    return Driver(current_app._get_current_object(),  # type: ignore[attr-defined]
                  settings, settings.twilio_from_number or SIM_HOTLINE)


def _people() -> list[Person]:
    """Everyone in the registry this account may act as: all for an admin, else their village."""
    r = hotline().r
    account = user()
    found: list[Person] = []
    for v in registry.villages(r):
        if account.sees(v.id):
            found += registry.residents(r, v.id) + registry.village_team(r, v.id)
            found += registry.heads(r, v.id)
    if account.is_admin:
        found += registry.all_duty(r)
    return list({p.phone: p for p in found}.values())


def _phone(raw: object) -> str:
    """A number the account may use: anyone it sees (an admin: any number, a stranger too).

    A head or leader may be only the people of their own village: not a stranger (a stranger's
    texts make triage tickets, which only an admin sees, and may opt a number out), not a contact
    person or anyone else outside the ledger they see. The same 404 whoever the number is."""
    phone = try_normalise(str(raw or "")[:40], hotline().settings.default_region)
    if phone is None:
        abort(400, description="phone")
    if not user().is_admin and phone not in {p.phone for p in _people()}:
        abort(404)
    return phone


def _json() -> dict[str, Any]:
    """The request's JSON object ({} for none); 400 for JSON nested too deep or holding half
    a character (a lone surrogate no record or Redis key can store)."""
    if not request.is_json:
        return {}
    try:
        data = jsonsafe.loads(request.get_data(cache=True), whole_characters=True)
    except jsonsafe.BadJSON as exc:
        if str(exc) == "not JSON":
            return {}
        abort(400, description=str(exc))
    return data if isinstance(data, dict) else {}


def _remember(phone: str, direction: str, body: str, via: str) -> None:
    key = KEYS.sim(phone)
    entry = json.dumps({"at": clock.timestamp(), "dir": direction, "body": body, "via": via},
                       ensure_ascii=False)
    with hotline().r.pipeline(transaction=True) as pipe:
        pipe.lpush(key, entry)
        pipe.ltrim(key, 0, LOG_KEEP - 1)
        pipe.expire(key, LOG_TTL)
        pipe.execute()


def _answer(turn: Turn, sid: str, caller: str) -> ResponseReturnValue:
    return {"sid": sid, "from": caller, **turn.to_json()}


def _failed(exc: SimulatorError) -> ResponseReturnValue:
    log.warning("simulator: %s", exc)
    return {"error": str(exc)}, 502


@bp.get("")
def page() -> ResponseReturnValue:
    people = sorted(_people(), key=lambda p: (p.village or "~", p.grid, p.role, p.order))
    return render_template("simulator.html", people=people, hotline_number=_driver().to)


@bp.post("/call")
def call() -> ResponseReturnValue:
    caller = _phone(_json().get("from"))
    driver = _driver()
    sid = new_sid("CA")
    try:
        turn = driver.voice(driver.url("/twilio/voice"), driver.call_params(sid, caller, "ringing"))
    except SimulatorError as exc:
        return _failed(exc)
    return _answer(turn, sid, caller)


def _ongoing(data: dict[str, Any]) -> tuple[str, str]:
    """The caller and the CallSid of the call a step belongs to (400 for anything else)."""
    sid = str(data.get("sid", ""))[:40]
    if not sid.startswith("CA"):
        abort(400, description="step")
    return _phone(data.get("from")), sid


@bp.post("/call/step")
def call_step() -> ResponseReturnValue:
    """The caller presses keys, records, or stays silent at the step the call waits on."""
    data = _json()
    caller, sid = _ongoing(data)
    kind = str(data.get("kind", ""))
    url = str(data.get("url", ""))
    if kind not in ("key", "record", "silence"):
        abort(400, description="step")
    driver = _driver()
    params = driver.call_params(sid, caller)
    recording: dict[str, str] = {}
    if kind == "key":
        digits = "".join(c for c in str(data.get("digits", "")) if c in "0123456789*#")[:20]
        params["Digits"] = digits
    elif kind == "record":
        recording = {"RecordingUrl": url_for("static", filename="sim/recording.wav", _external=True),
                     "RecordingSid": new_sid("RE"), "RecordingDuration": "4"}
        params |= recording | {"Digits": "#"}
    try:
        turn = driver.voice(url, params)
        callback = str(data.get("callback", ""))
        if recording and callback:
            # Twilio calls the action first and the recording callback once the audio is stored.
            driver.post(callback, {**driver.call_params(sid, caller), **recording,
                                   "RecordingStatus": "completed", "RecordingChannels": "1",
                                   "RecordingSource": "RecordVerb"})
    except SimulatorError as exc:
        return _failed(exc)
    return _answer(turn, sid, caller)


@bp.post("/call/hangup")
def hangup() -> ResponseReturnValue:
    """The call ends: Twilio posts the call's final status (a caller who hung up early gets a callback)."""
    caller, sid = _ongoing(_json())
    driver = _driver()
    params = driver.call_params(sid, caller, "completed") | {"CallDuration": "30"}
    try:
        status, _ = driver.post(driver.url(STATUS_PATH), params)
    except SimulatorError as exc:
        return _failed(exc)
    return {"ended": True, "status_callback": status < 300}


@bp.post("/sms")
def sms() -> ResponseReturnValue:
    data = _json()
    sender = _phone(data.get("from"))
    body = str(data.get("body", ""))[:BODY_MAX]
    if not body.strip():
        abort(400, description="body")
    _remember(sender, "sent", body, "sms")
    try:
        replies = _driver().sms(sender, body)
    except SimulatorError as exc:
        return _failed(exc)
    for reply in replies:
        _remember(sender, "got", reply, "reply")
    return {"replies": replies}


@bp.get("/inbox")
def inbox() -> ResponseReturnValue:
    """A phone's texts, newest first: what it sent, the TwiML replies, and the outbox deliveries."""
    phone = _phone(request.args.get("phone"))
    hl = hotline()
    items: list[dict[str, Any]] = []
    for raw in hl.r.lrange(KEYS.sim(phone), 0, LOG_KEEP - 1):
        entry = json.loads(raw)
        items.append({"at": entry["at"], "dir": entry["dir"], "body": entry["body"],
                      "via": entry["via"], "status": ""})
    for m in messages.outbox(hl, phone, limit=LOG_KEEP):
        items.append({"at": m.updated_at or m.created_at, "dir": "got", "body": m.body,
                      "via": m.kind, "status": m.status, "ticket": m.ticket})
    items.sort(key=lambda i: i["at"], reverse=True)
    tz = hl.settings.tz
    for item in items:
        item["when"] = clock.from_timestamp(item["at"]).astimezone(tz).strftime("%H:%M:%S")
    return {"phone": phone, "messages": items[:LOG_KEEP]}
