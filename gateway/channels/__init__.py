"""Channels carry SMS out (and in): each lives in a folder of its own behind one small interface.

`Channel` is that interface. A channel's folder holds its outbound half (transport.py) and its
inbound half: the webhooks its provider calls (twilio/sms.py, twilio/status.py,
android/webhook.py) or the inbox it reads (gammu/inbox.py, android/events.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from gateway.context import Hotline
from gateway.messages import Message
from gateway.senders import Sender


class TransportError(Exception):
    """A send that failed; `permanent` says whether trying again could ever help."""

    def __init__(self, message: str, *, permanent: bool, code: str = "") -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code


@dataclass(frozen=True)
class Receipt:
    """What the channel answered: its id for the message, and the status it reports."""

    provider_id: str
    status: str = "sent"


class Channel(ABC):
    """What every channel is to the send worker (workers/messages.py).

    A channel must say its `name` and `send`; the rest has a default a channel overrides
    when it can do better:

    - `sender`: what the provider counts a rate limit by, so what sends are paced by
      (default: the channel itself; Twilio: its From number or Messaging Service);
    - `lookup`: whether the provider already has a message an interrupted attempt may have
      left there, asked before trying again (default: cannot tell, None);
    - `records_state`: True when `send` keeps the channel's health (channels.state) itself;
      otherwise the worker records each success and transient failure for it.
    """

    name: str
    records_state: bool = False

    @property
    def sender(self) -> str:
        return self.name

    @abstractmethod
    def send(self, message: Message) -> Receipt:
        """Hand one message over; raise TransportError on failure."""

    def lookup(self, message: Message) -> Receipt | None:
        """The provider's receipt for `message` if it already has it; raise TransportError
        when it cannot be asked."""
        return None


def _outbox(hl: Hotline) -> Channel:
    from gateway.channels.outbox.transport import OutboxChannel

    return OutboxChannel(hl)


def _twilio(hl: Hotline) -> Channel:
    from gateway.channels.twilio.transport import TwilioChannel

    return TwilioChannel(hl)


def _android(hl: Hotline) -> Channel:
    from gateway.channels.android.transport import AndroidChannel

    return AndroidChannel(hl)


def _gammu(hl: Hotline) -> Channel:
    from gateway.channels.gammu.transport import GammuChannel

    return GammuChannel(hl)


FACTORIES: dict[str, Callable[[Hotline], Channel]] = {"outbox": _outbox, "twilio": _twilio,
                                                      "android": _android, "gammu": _gammu}


def channel_for(hl: Hotline, sender: Sender) -> Channel:
    """The channel of one sender of the pool, built from its connection and called by its name
    (its health, its outage and its caps are kept under that name)."""
    try:
        factory = FACTORIES[sender.kind]
    except KeyError:
        raise TransportError(f"channel {sender.kind!r} is not available", permanent=True) from None
    channel = factory(hl.with_settings(sender.settings(hl.settings)))
    channel.name = sender.name
    return channel


def senders_of(hl: Hotline, kind: str) -> list[tuple[Sender, Hotline]]:
    """The pool's senders of one kind, each with the hotline as its channel sees it (its own
    phone's URL and keys, its own modem's spool): what reads their inboxes goes by these."""
    return [(s, hl.with_settings(s.settings(hl.settings))) for s in hl.pool if s.kind == kind]


def get_channel(hl: Hotline, name: str | None = None) -> Channel:
    """The channel of the pool's sender called `name` (default: the first), or of the kind
    `name` with the hotline's own settings."""
    sender = hl.sender(name) if name else hl.pool[0]
    if sender is None:
        try:
            return FACTORIES[name or ""](hl)
        except KeyError:
            raise TransportError(f"channel {name!r} is not available", permanent=True) from None
    return channel_for(hl, sender)
