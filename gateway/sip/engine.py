"""The one small interface the SIP agent needs from a SIP stack, so the stack can be replaced.

The engine runs its own event loop on one thread; every method and callback below is called
on that thread, and the agent must never block it (webhook HTTP runs in a pool and posts its
results back to the loop).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class IncomingCall:
    call_id: str          # the engine's handle for the call
    caller: str           # P-Asserted-Identity (else From) user part, not yet normalised
    called: str           # Request-URI user part
    source: str           # the peer's IP address, checked against HOTLINE_SIP_PEERS


class Engine(Protocol):
    capacity: int  # calls it holds at once; INVITEs beyond get 486 Busy Here

    def on_call(self, handler: Callable[[IncomingCall], bool]) -> None:
        """`handler` decides each INVITE: True answers it (200), False refuses it (403, no 180)."""

    def on_key(self, handler: Callable[[str, str], None]) -> None:
        """`handler(call_id, key)` once per key, from RFC 2833 or SIP INFO dtmf-relay."""

    def on_hangup(self, handler: Callable[[str], None]) -> None:
        """`handler(call_id)` once, when the call ends (either side hung up)."""

    def play(self, call_id: str, wav: Path) -> None:
        """Start playing an 8 kHz mono 16-bit WAV to the caller (once, no loop); stops any other.
        The agent times the prompt from the file's length."""

    def stop_playback(self, call_id: str) -> None: ...

    def record(self, call_id: str, wav: Path) -> None:
        """Record the caller's audio to `wav` until stop_recording or the call ends."""

    def stop_recording(self, call_id: str) -> None: ...

    def level(self, call_id: str) -> int:
        """How loud the caller is now (0-255): the agent's silence detection for <Record>."""

    def hangup(self, call_id: str) -> None: ...

    def run_once(self, timeout_ms: int) -> None:
        """Handle SIP/RTP events for up to `timeout_ms` (the loop thread calls this repeatedly)."""

    def close(self) -> None: ...
