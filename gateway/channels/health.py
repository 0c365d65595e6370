"""Each configured channel's state and backlog, for /healthz: is the phone or modem keeping up?"""

from __future__ import annotations

from typing import Any

from gateway.channels import fallback as fallback_policy
from gateway.channels import state as channel_state
from gateway.context import Hotline
from gateway.store import KEYS

COUNT_AT_MOST = 5000  # a backlog bigger than this is reported as this: the point is made


def report(hl: Hotline) -> dict[str, dict[str, Any]]:
    s = hl.settings
    names = [s.sms_channel] + ([s.sms_fallback] if s.sms_fallback else [])
    waiting = _waiting(hl)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        st = channel_state.read(hl, name)
        failing = st.failing(fallback_policy.THRESHOLD, fallback_policy.WINDOW)
        entry: dict[str, Any] = {
            "role": "primary" if name == s.sms_channel else "fallback",
            "state": "failing" if failing else "ok",
            "queued": waiting.get((name, "queued"), 0),
            "sending": waiting.get((name, "sending"), 0),
            "failures_in_a_row": st.failures,
            "last_error": st.last_error or None,
        }
        if failing and name == s.sms_channel and s.sms_fallback:
            entry["state"] = f"failing: using {s.sms_fallback}"
        if st.poll_ok is not None or st.poll_error:
            entry["inbox_read_at"] = st.poll_ok
            entry["inbox_error"] = st.poll_error or None
        if name == "android":
            entry.update(_android(hl))
            if entry["phone"].get("status") == "unreachable" and entry["state"] == "ok":
                entry["state"] = "phone unreachable"
        if name == "gammu":
            entry.update(_gammu(hl))
            if entry["modem"] != "ok":
                entry["state"] = entry["modem"]
        out[name] = entry
    return out


def _waiting(hl: Hotline) -> dict[tuple[str, str], int]:
    """Messages not yet out, per (channel, status): queued here, or handed over and unconfirmed."""
    counts: dict[tuple[str, str], int] = {}
    for status in ("queued", "sending"):
        ids = hl.r.zrange(KEYS.messages_by_status(status), 0, COUNT_AT_MOST - 1)
        pipe = hl.r.pipeline(transaction=False)
        for mid in ids:
            pipe.hget(KEYS.message(mid), "channel")
        for channel in pipe.execute():
            key = (channel or hl.settings.sms_channel, status)
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


def _android(hl: Hotline) -> dict[str, Any]:
    """The phone's own health (GET /health, which sends nothing) and how reading its inbox goes."""
    from gateway.channels import TransportError
    from gateway.channels.android.transport import INBOX_SINCE, AndroidChannel

    try:
        phone: dict[str, Any] = AndroidChannel(hl, connect_timeout=1, read_timeout=2).health()
    except TransportError as exc:
        phone = {"status": "unreachable", "error": str(exc)}
    every = hl.settings.android_gateway_poll
    inbox = channel_state.get_field(hl, "android", "inbox")
    readable = {"ok": "yes", "missing": f"no: the app is older than {INBOX_SINCE}",
                "error": "no: the last read failed"}.get(inbox or "", "not read yet")
    return {"phone": phone,
            "inbox_readable": readable if every else "not read (ANDROID_GATEWAY_POLL=0)",
            "poll_every": every or None,
            "last_poll": channel_state.get_field(hl, "android", "poll_result")}
