"""While Redis is away, inbound requests are spooled, answered kindly, and replayed once it returns."""

from __future__ import annotations

import logging
import threading
import time

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway import calls, conversation, spool
from gateway.context import Hotline
from gateway.store import KEYS, SEEN_TTL, claim, unclaim

log = logging.getLogger(__name__)

# The failures that mean "Redis is not there", as opposed to a bug.
AWAY = (RedisConnectionError, RedisTimeoutError)


def replay_entry(hl: Hotline, kind: str, payload: dict[str, str]) -> None:
    """Handle one spooled request as its webhook would have; its provider id keeps it once."""
    if kind == "sms":
        sid = payload.get("MessageSid") or payload.get("SmsSid") or ""
        if sid and not claim(hl.r, KEYS.seen("sms", sid), ttl=SEEN_TTL):
            return
        try:
            reply = conversation.handle_text(hl, payload.get("From", ""), payload.get("Body", ""),
                                             channel="twilio", provider_id=sid)
        except Exception:
            if sid:
                unclaim(hl.r, KEYS.seen("sms", sid))
            raise
        # The TwiML answer went out long ago ("received"); the real reply goes by SMS.
        conversation.queue_reply(hl, payload.get("From", ""), reply, via="twilio")
    elif kind == "ring":
        from gateway.channels.missed_call import NotANumber, missed_call

        try:
            missed_call(hl, payload.get("From", ""))
        except NotANumber:
            log.error("spool: a ring with no number to call back skipped")
    elif kind == "voice":
        # The caller was told they would be called back: a call that did not finish.
        calls.call_status(hl, {**payload, "CallStatus": "completed", "Direction": "inbound"})
    else:
        log.error("spool: unknown entry kind %r skipped", kind)


def replay(hl: Hotline) -> int:
    """Replay the spool under HOTLINE_DATA_DIR if Redis answers; how many entries were handled."""
    if not spool.pending(hl.settings.data_dir):
        return 0
    try:
        hl.r.ping()
    except AWAY:
        return 0
    return spool.replay(hl.settings.data_dir, lambda kind, p: replay_entry(hl, kind, p))


def start_replayer(hl: Hotline, every: float = 5.0) -> threading.Thread:
    """A daemon thread that replays this host's spool whenever there is one and Redis is back."""
    def loop() -> None:
        while True:
            time.sleep(every)
            try:
                replay(hl)
            except Exception:  # a replay that fails is retried next round; never kill the thread
                log.exception("spool replay failed")

    thread = threading.Thread(target=loop, name="spool-replayer", daemon=True)
    thread.start()
    return thread
