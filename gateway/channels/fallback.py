"""HOTLINE_SMS_FALLBACK: while the primary channel keeps failing, messages go through the second one.

"Keeps failing" is kept in Redis (channels.state), so every worker agrees: `THRESHOLD`
transient failures in a row, the last within `WINDOW` seconds. Then sends go straight to
the fallback, except one probe of the primary every `PROBE_EVERY` seconds; its first
success puts everything back on the primary. A permanent error (a bad number) says nothing
about the channel and is not counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gateway.channels import Channel, Receipt, TransportError
from gateway.channels import state as channel_state
from gateway.context import Hotline
from gateway.messages import Message
from gateway.store import KEYS

log = logging.getLogger(__name__)

THRESHOLD = 3
WINDOW = 600
PROBE_EVERY = 60


class FallbackChannel(Channel):
    """Sends through `primary`, or through the fallback while the primary is failing.

    `name` is the primary's until a send, then the name of the channel that carried it (the
    worker records that on the message).
    """

    records_state = True  # it keeps both channels' health itself (see channels.state)

    def __init__(self, hl: Hotline, primary: Channel, fallback: Callable[[], Channel], *,
                 threshold: int | None = None, window: float | None = None,
                 probe_every: float | None = None) -> None:
        self.hl = hl
        self.primary = primary
        self._fallback = fallback
        self.threshold = THRESHOLD if threshold is None else threshold
        self.window = WINDOW if window is None else window
        self.probe_every = PROBE_EVERY if probe_every is None else probe_every
        self.name = primary.name

    @property
    def sender(self) -> str:
        """What the worker paces by: the primary's sender."""
        return self.primary.sender

    def failing(self) -> bool:
        return channel_state.read(self.hl, self.primary.name).failing(self.threshold, self.window)

    def send(self, message: Message) -> Receipt:
        if self.failing() and not self._probe_due():
            return self._via_fallback(message, "primary failing")
        try:
            receipt = self.primary.send(message)
        except TransportError as exc:
            if exc.permanent:
                raise
            count = self._count_failure(exc)
            if count < self.threshold:
                raise  # RQ retries; the next attempt may find the primary back
            log.warning("sms: %s failed %d times in a row (%s): using %s", self.primary.name,
                        count, exc, self.hl.settings.sms_fallback)
            return self._via_fallback(message, str(exc))
        if not self.primary.records_state:
            channel_state.record_ok(self.hl, self.primary.name)
        self.name = self.primary.name
        return receipt

    def _count_failure(self, exc: TransportError) -> int:
        if self.primary.records_state:
            return channel_state.read(self.hl, self.primary.name).failures
        return channel_state.record_failure(self.hl, self.primary.name, f"{exc.code} {exc}")

    def _probe_due(self) -> bool:
        """True for one sender every PROBE_EVERY seconds: that send tries the primary again."""
        key = KEYS.lock(f"probe:{self.primary.name}")
        return bool(self.hl.r.set(key, "1", nx=True, px=max(1, int(self.probe_every * 1000))))

    def _via_fallback(self, message: Message, why: str) -> Receipt:
        channel = self._fallback()
        try:
            receipt = channel.send(message)
        except TransportError as exc:
            if not exc.permanent and not channel.records_state:
                channel_state.record_failure(self.hl, channel.name, f"{exc.code} {exc}")
            raise
        if not channel.records_state:
            channel_state.record_ok(self.hl, channel.name)
        self.name = channel.name
        log.info("sms %s went through %s (%s)", message.id, channel.name, why[:80])
        return receipt

    def lookup(self, message: Message) -> Receipt | None:
        """Whether either channel already has the message (asked before a second attempt).

        The fallback is asked first; a primary that cannot be asked (it is away) counts as
        not having it, or a Twilio outage would block the very messages the fallback is for.
        """
        for channel in (self._fallback(), self.primary):
            try:
                found = channel.lookup(message)
            except TransportError:
                continue
            if found is not None:
                self.name = channel.name
                return found
        return None
