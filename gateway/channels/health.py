"""Each sender's state, its sends against its caps, its backlog: what /healthz and `hotline channels` show.

A sender's state is read where the send path keeps it, never worked out again here: its
outage (gateway.outage.Gate: a probe, or between probes), its caps' counts (gateway.caps),
its channel's health (channels.state), and for a phone or a modem their own reports.
"""

from __future__ import annotations

from typing import Any

from gateway import caps, clock
from gateway.channels import state as channel_state
from gateway.context import Hotline
from gateway.outage import Gate
from gateway.senders import Sender
from gateway.store import KEYS

COUNT_AT_MOST = 5000  # a backlog bigger than this is reported as this: the point is made


def report(hl: Hotline, *, devices: bool = True) -> dict[str, dict[str, Any]]:
    """Per sender (by name, in the pool's order); with `devices`, also what each phone says of
    itself (GET /health) and each modem's spool."""
    waiting = _waiting(hl)
    return {sender.name: _entry(hl, sender, waiting, devices) for sender in hl.pool}


def _entry(hl: Hotline, sender: Sender, waiting: dict[tuple[str, str], int],
           devices: bool) -> dict[str, Any]:
    st = channel_state.read(hl, sender.name)
    sent = caps.counts(hl, sender)
    entry: dict[str, Any] = {
        "kind": sender.kind,
        "role": "standby" if sender.standby else "sender",
        "villages": list(sender.villages), "towns": list(sender.towns),
        "state": _state(hl, sender, sent),
        "rate": sender.rate,
        "sent_this_hour": sent["hour"], "per_hour": sender.per_hour,
        "sent_today": sent["day"], "per_day": sender.per_day,
        "quiet": "-".join(t.strftime("%H:%M") for t in sender.quiet) if sender.quiet else None,
        "queued": waiting.get((sender.name, "queued"), 0),
        "sending": waiting.get((sender.name, "sending"), 0),
        "held": int(hl.r.zcard(KEYS.held(sender.name))),
        "failures_in_a_row": st.failures,
        "last_error": st.last_error or None,
    }
    if st.poll_ok is not None or st.poll_error:
        entry["inbox_read_at"] = st.poll_ok
        entry["inbox_error"] = st.poll_error or None
    if not devices:
        return entry
    own = hl.with_settings(sender.settings(hl.settings))
    if sender.kind == "android":
        entry.update(_android(own, sender.name))
        if entry["phone"].get("status") == "unreachable" and entry["state"] == "ok":
            entry["state"] = "phone unreachable"
    if sender.kind == "gammu":
        entry.update(_gammu(own))
        if entry["modem"] != "ok" and entry["state"] == "ok":
            entry["state"] = entry["modem"]
    return entry


def _state(hl: Hotline, sender: Sender, sent: dict[str, int]) -> str:
    """ok; failing (in outage: probing, or when it is probed next); full (a cap reached), or
    full for notices (all but what a cap keeps for the help texts)."""
    gate = Gate(hl, sender.name)
    probe = gate.probe()
    if probe is not None:
        due = clock.local_iso(gate.next_probe(), hl.settings.tz)
        return "failing: probing" if probe or not due else f"failing: next try {due[11:19]}"
    caps = [(window, most) for window, most in (("hour", sender.per_hour), ("day", sender.per_day))
            if most is not None]
    for window, most in caps:
        if sent[window] >= most:
            return f"full: {most} this {window}"
    for window, most in caps:  # what is left is kept for offers, replies and codes
        if sent[window] >= most - sender.kept(most):
            return f"full for notices: {sent[window]} this {window}"
    return "ok"


def _waiting(hl: Hotline) -> dict[tuple[str, str], int]:
    """Messages not yet out, per (sender, status): queued here, or handed over and unconfirmed."""
    counts: dict[tuple[str, str], int] = {}
    for status in ("queued", "sending"):
        ids = hl.r.zrange(KEYS.messages_by_status(status), 0, COUNT_AT_MOST - 1)
        pipe = hl.r.pipeline(transaction=False)
        for mid in ids:
            pipe.hget(KEYS.message(mid), "channel")
        for channel in pipe.execute():
            key = (channel or "", status)
            counts[key] = counts.get(key, 0) + 1
    return counts


def _gammu(hl: Hotline) -> dict[str, Any]:
    from gateway.channels.gammu.transport import backlog

    try:
        b = backlog(hl)
    except OSError as exc:
        return {"modem": "down", "outbox": None, "spool_error": exc.strerror or str(exc)}
    return {"modem": b.state, "outbox": b.waiting,
            "oldest_outbox_age": round(b.oldest_age, 1) if b.oldest_age is not None else None,
            "error_folder": b.errors}


def _android(hl: Hotline, name: str) -> dict[str, Any]:
    """The phone's own health (GET /health, which sends nothing) and how reading its inbox goes."""
    from gateway.channels import TransportError
    from gateway.channels.android.transport import INBOX_SINCE, AndroidChannel

    try:
        phone: dict[str, Any] = AndroidChannel(hl, connect_timeout=1, read_timeout=2).health()
    except TransportError as exc:
        phone = {"status": "unreachable", "error": str(exc)}
    every = hl.settings.android_gateway_poll
    inbox = channel_state.get_field(hl, name, "inbox")
    readable = {"ok": "yes", "missing": f"no: the app is older than {INBOX_SINCE}",
                "error": "no: the last read failed"}.get(inbox or "", "not read yet")
    return {"phone": phone,
            "inbox_readable": readable if every else "not read (ANDROID_GATEWAY_POLL=0)",
            "poll_every": every or None,
            "last_poll": channel_state.get_field(hl, name, "poll_result")}
