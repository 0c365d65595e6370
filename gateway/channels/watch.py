"""Looking for inbound texts on the local SIM channels: the modem's inbox/ and the phone's inbox.

`hotline worker` (and so `hotline run`) starts a `Watcher` thread when a local SIM channel is
configured; `hotline gammu watch` runs the same loop alone, `hotline gammu poll` once. For
gammu this is how texts come in at all (gammu-smsd's RunOnReceive may also call
`hotline gammu poll` for no delay); for Android it is the fallback for webhooks that cannot
reach the gateway, harmless beside working ones (both share one de-dup).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from gateway.channels import TransportError
from gateway.channels.missed_call import replay_pending
from gateway.context import Hotline

log = logging.getLogger(__name__)

EVERY = 5.0            # seconds between looks at the modem's folders (cheap: a directory listing)
ANDROID_EVERY = 60.0   # seconds between GET /inbox on the phone


def local_channels(hl: Hotline) -> set[str]:
    s = hl.settings
    return {s.sms_channel, s.sms_fallback or ""} & {"gammu", "android"}


def poll_gammu(hl: Hotline, named: tuple[str, ...] = ()) -> tuple[int, int]:
    """One look at gammu's folders: (texts handled, statuses moved)."""
    from gateway.channels.gammu.inbox import read_inbox
    from gateway.channels.gammu.transport import follow_status

    return read_inbox(hl, named), follow_status(hl)


def poll_android(hl: Hotline) -> int:
    from gateway.channels.android.events import poll

    return poll(hl)


class Watcher(threading.Thread):
    """Polls until stopped; an error is logged (once while it lasts) and the loop goes on."""

    def __init__(self, hl: Hotline, every: float = EVERY, android_every: float = ANDROID_EVERY,
                 channels: set[str] | None = None) -> None:
        super().__init__(name="sim-watcher", daemon=True)
        self.hl = hl
        self.channels = local_channels(hl) if channels is None else channels
        self.every = every
        self.android_every = android_every
        self.stopped = threading.Event()
        self._last_error: dict[str, str] = {}

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        channels = self.channels
        next_android = 0.0
        while not self.stopped.is_set():
            if "gammu" in channels:
                self._guard("gammu", lambda: poll_gammu(self.hl))
                self._guard("missed calls", lambda: replay_pending(self.hl))
            if "android" in channels and time.monotonic() >= next_android:
                next_android = time.monotonic() + self.android_every
                self._guard("android", lambda: poll_android(self.hl))
            self.stopped.wait(self.every)

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
    watcher.start()
    log.info("watching the %s inbox", " and ".join(sorted(local_channels(hl))))
    return watcher
