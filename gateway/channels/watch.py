"""Looking for inbound texts on the local SIM channels: the modem's inbox/ and the phone's inbox.

`hotline worker` (and so `hotline run`) starts a `Watcher` thread when a local SIM channel is
configured; `hotline gammu watch` runs the same loop alone, `hotline gammu poll` once. For
gammu this is how texts come in at all (gammu-smsd's RunOnReceive may also call
`hotline gammu poll` for no delay); for Android it is how texts come in when webhooks cannot
reach the gateway (no internet in the office), harmless beside working ones (both share one
de-dup). The phone is read every ANDROID_GATEWAY_POLL seconds by one worker at a time: a
Redis lock that lapses just before the next turn decides whose turn it is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial

from redis.exceptions import RedisError

from gateway.channels import TransportError
from gateway.context import Hotline
from gateway.store import KEYS

log = logging.getLogger(__name__)

EVERY = 5.0            # seconds between looks at the modem's folders (cheap: a directory listing)


def local_channels(hl: Hotline) -> set[str]:
    """The local SIM kinds the pool has (gammu, android)."""
    return {s.kind for s in hl.pool} & {"gammu", "android"}


def poll_gammu(hl: Hotline, named: tuple[str, ...] = ()) -> tuple[int, int]:
    """One look at every modem's folders: (texts handled, statuses moved)."""
    from gateway.channels import senders_of
    from gateway.channels.gammu.inbox import read_inbox
    from gateway.channels.gammu.transport import follow_status

    texts = statuses = 0
    for sender, own in senders_of(hl, "gammu"):
        texts += read_inbox(own, named, name=sender.name)
        statuses += follow_status(own, sender.name)
    return texts, statuses


def poll_android(hl: Hotline, name: str) -> int:
    """One read of the inbox of the phone of sender `name`."""
    from gateway.channels import channel_for
    from gateway.channels.android.events import poll
    from gateway.channels.android.transport import AndroidChannel

    sender = hl.sender(name)
    if sender is None:
        return 0
    channel = channel_for(hl, sender)
    assert isinstance(channel, AndroidChannel)
    return poll(hl, channel, name)


class Watcher(threading.Thread):
    """Polls until stopped; an error is logged (once while it lasts) and the loop goes on."""

    def __init__(self, hl: Hotline, every: float = EVERY, android_every: float | None = None,
                 channels: set[str] | None = None) -> None:
        from gateway.channels import senders_of

        super().__init__(name="sim-watcher", daemon=True)
        self.hl = hl
        self.channels = local_channels(hl) if channels is None else channels
        self.every = every
        # Each phone's ANDROID_GATEWAY_POLL (its `poll`); 0 = webhooks only, never read.
        self.phones = {sender.name: own.settings.android_gateway_poll if android_every is None
                       else android_every for sender, own in senders_of(hl, "android")}
        self.phones = {name: every for name, every in self.phones.items() if every}
        self.android_every = min(self.phones.values(), default=0)
        if not self.phones:
            self.channels = self.channels - {"android"}
        self.stopped = threading.Event()
        self._last_error: dict[str, str] = {}

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        channels = self.channels
        # Look for our turn at each phone four times per period, so the polls of all workers
        # together come about every ANDROID_GATEWAY_POLL seconds.
        tick = min(self.every, self.android_every / 4) if "android" in channels else self.every
        next_gammu = 0.0
        while not self.stopped.is_set():
            if "gammu" in channels and time.monotonic() >= next_gammu:
                next_gammu = time.monotonic() + self.every
                self._guard("gammu", lambda: poll_gammu(self.hl))
                self._guard("spool", lambda: _replay_spool(self.hl))
            if "android" in channels:
                for name in self.phones:
                    if self._android_turn(tick, name):
                        self._guard(name, partial(poll_android, self.hl, name))
            self.stopped.wait(tick)

    def _android_turn(self, tick: float, name: str = "android") -> bool:
        """Whether this worker reads the phone now: the lock lapses a tick before the next turn."""
        try:
            hold = max(0.05, self.phones.get(name, self.android_every) - tick)
            return bool(self.hl.r.set(KEYS.lock(f"android-poll:{name}"), self.name, nx=True,
                                      px=int(hold * 1000)))
        except (RedisError, OSError) as exc:
            self._report(name, f"{type(exc).__name__}: {exc}")
            return False

    def _guard(self, name: str, look: Callable[[], object]) -> None:
        try:
            look()
        except (TransportError, OSError) as exc:
            self._report(name, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bad file or a Redis hiccup must not end the watching
            log.exception("%s inbox: unexpected error", name)
            self._report(name, f"{type(exc).__name__}: {exc}")
        else:
            if self._last_error.pop(name, None) is not None:
                log.warning("%s inbox: reading again", name)

    def _report(self, name: str, error: str) -> None:
        if self._last_error.get(name) != error:
            log.warning("%s inbox: cannot read it (%s); will keep trying", name, error)
        self._last_error[name] = error


def start_watcher(hl: Hotline) -> Watcher | None:
    """The watcher thread, started, if a local SIM channel is configured (else None)."""
    if not local_channels(hl):
        return None
    watcher = Watcher(hl)
    watched = [s.name for s in hl.pool if s.kind == "gammu" and "gammu" in watcher.channels]
    watched += list(watcher.phones)
    if not watched:
        return None  # the phones' inboxes are not read (poll = 0): webhooks only
    watcher.start()
    log.info("watching the inbox of %s", ", ".join(watched))
    return watcher


def _replay_spool(hl: Hotline) -> int:
    """Rings (and texts, calls) kept in the spool while Redis was away, once it is back."""
    from gateway import redis_away

    return redis_away.replay(hl)
