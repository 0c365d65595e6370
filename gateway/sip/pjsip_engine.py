"""PJSIP (pjsua2) behind the Engine interface: SIP, RTP, G.711, keys and the audio bridge on one thread.

PJSIP was chosen because it is maintained, retransmits its 200 OK until ACKed, answers SIP INFO
dtmf-relay and RFC 2833 itself (one event per key), mixes any number of calls in its bridge
without a sound card, and keeps each call's player and recorder apart (see README, "Voice over
SIP"). Everything pjsua2 is touched from the thread that created the engine.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import re
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pjsua2 as pj

from gateway.sip.engine import IncomingCall

log = logging.getLogger(__name__)
_PAI = re.compile(r"^P-Asserted-Identity\s*:\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_USER = re.compile(r"(?:sips?:|tel:)([^@;>\s]+)")


def _user(uri: str) -> str:
    part = uri.split("sip:", 1)[-1]
    return part.split("@", 1)[0] if "@" in part else ""


def caller_of(message: str, from_uri: str) -> str:
    """The caller's number: P-Asserted-Identity (a carrier's or gateway's word for the line
    that rang) when the INVITE has one, else the From user part."""
    found = _PAI.search(message)
    if found:
        user = _USER.search(found.group(1))
        if user:
            return user.group(1)
    return _user(from_uri)


# pjsua takes the smaller of this and its compiled-in PJSUA_MAX_CALLS, which is 4 in the PyPI
# wheel (pjsua2-python 2.15): more calls at once are more addresses (HOTLINE_SIP_LISTEN), an
# engine process each, or a pjsua2 built with a larger PJSUA_MAX_CALLS (README, "Voice over SIP").
ASKED_CALLS = 32
# Seconds a player (or call) let go of is kept before Python destroys it. PJSIP 2.14+ takes
# a port out of the bridge on the media clock's thread, later; a player destroyed before
# that can still reach its end there and call back into freed memory (seen: a segfault in
# AudioMediaPlayer::eof_cb on a loaded machine, the engine and its four calls gone).
GRACE = 2.0


def _max_calls() -> int:
    """How many calls pjsua will hold at once, as it decided at libInit (its C API says; the
    SWIG binding does not): more INVITEs meanwhile get 486 Busy Here from pjsua itself."""
    try:
        count = ctypes.CDLL(pj._pjsua2.__file__).pjsua_call_get_max_count
    except (AttributeError, OSError):  # a build that hides its C symbols: trust the request
        return ASKED_CALLS
    count.restype = ctypes.c_uint
    return int(count())


def _let_go(disconnect: Callable[[Any], None], other: Any) -> None:
    """Disconnect two ports of the bridge, if the bridge has not already (a player at its end,
    a call whose media went): an error then means there was nothing left to disconnect."""
    try:
        disconnect(other)
    except pj.Error as exc:
        log.debug("pjsua: nothing to disconnect (%s)", exc.reason)


class _Call(pj.Call):  # type: ignore[misc]
    def __init__(self, engine: Any, account: pj.Account, call_id: int) -> None:
        super().__init__(account, call_id)
        self.engine = engine  # a weak proxy: no cycle, so a call goes the moment it is let go
        self.key = str(call_id)
        self.media: Any = None
        self.player: Any = None
        self.recorder: Any = None
        self.waiting: Path | None = None  # a prompt asked for before the audio was up
        self.ended = False

    def onCallMediaState(self, prm: Any) -> None:
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.media = self.getAudioMedia(index)
        if self.media is not None and self.waiting is not None:
            wav, self.waiting = self.waiting, None
            self.engine.play(self.key, wav)

    def onCallState(self, prm: Any) -> None:
        if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.ended:
            self.ended = True
            self.engine.ended(self.key)

    def onDtmfDigit(self, prm: Any) -> None:
        self.engine.keyed(self.key, str(prm.digit))


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, engine: PjsipEngine) -> None:
        super().__init__()
        self.engine = weakref.proxy(engine)

    def onIncomingCall(self, prm: Any) -> None:
        call = _Call(self.engine, self, prm.callId)
        info = call.getInfo()
        source = str(prm.rdata.srcAddress).rsplit(":", 1)[0].strip("[]")
        incoming = IncomingCall(call_id=call.key,
                                caller=caller_of(str(prm.rdata.wholeMsg), info.remoteUri),
                                called=_user(info.localUri), source=source)
        op = pj.CallOpParam()
        if not self.engine.decide(incoming):
            op.statusCode = 403
            call.hangup(op)
            return
        self.engine.calls[incoming.call_id] = call
        op.statusCode = 200
        call.answer(op)


class PjsipEngine:
    def __init__(self, host: str, port: int, rtp_first: int = 16384, rtp_last: int = 16483) -> None:
        self.decide: Callable[[IncomingCall], bool] = lambda _c: False
        self.key_handler: Callable[[str, str], None] = lambda _c, _k: None
        self.hangup_handler: Callable[[str], None] = lambda _c: None
        self.calls: dict[str, _Call] = {}
        # pjsua objects let go of outside their own callbacks, with when: kept GRACE seconds.
        self._gone: list[tuple[float, Any]] = []
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = ASKED_CALLS
        cfg.logConfig.level = 1
        cfg.logConfig.consoleLevel = 1
        cfg.medConfig.noVad = True  # silence is sent as audio: gateways expect a steady stream
        # The null sound device is the bridge's clock: pjsua closes it after a second with no
        # connection in the bridge (every call between prompts: a slow web, a listening
        # <Gather>), and then no call's RTP goes out until the next prompt: seen as 14-20 s
        # gaps under load, which a gateway's RTP timeout takes for a dead call. Never close it.
        cfg.medConfig.sndAutoCloseTime = -1
        cfg.medConfig.ptime = 20
        cfg.medConfig.clockRate = 8000  # the bridge at G.711's rate: no resampling, 8 kHz WAVs
        cfg.medConfig.sndClockRate = 8000
        self.ep.libInit(cfg)
        self.capacity = _max_calls()
        tcfg = pj.TransportConfig()
        tcfg.boundAddress = host
        tcfg.port = port
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.ep.audDevManager().setNullDev()
        for codec in self.ep.codecEnum2():
            if not codec.codecId.startswith(("PCMA/", "PCMU/")):
                self.ep.codecSetPriority(codec.codecId, 0)  # G.711 only: what gateways speak
        # Equal priority: the answer follows the caller's order (PCMA first on Chinese networks).
        self.ep.codecSetPriority("PCMA/8000/1", 200)
        self.ep.codecSetPriority("PCMU/8000/1", 200)
        self.ep.libStart()
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:hotline@{host}:{port}"
        acfg.mediaConfig.transportConfig.boundAddress = host
        acfg.mediaConfig.transportConfig.port = rtp_first
        acfg.mediaConfig.transportConfig.portRange = max(0, rtp_last - rtp_first)
        self.account = _Account(self)
        self.account.create(acfg)

    # --- the Engine interface ----------------------------------------------------------

    def on_call(self, handler: Callable[[IncomingCall], bool]) -> None:
        self.decide = handler

    def on_key(self, handler: Callable[[str, str], None]) -> None:
        self.key_handler = handler

    def on_hangup(self, handler: Callable[[str], None]) -> None:
        self.hangup_handler = handler

    def play(self, call_id: str, wav: Path) -> None:
        call = self.calls.get(call_id)
        if call is None or call.ended:
            return
        self.stop_playback(call_id)
        if call.media is None:
            call.waiting = wav
            return
        player = pj.AudioMediaPlayer()
        player.createPlayer(str(wav), pj.PJMEDIA_FILE_NO_LOOP)
        player.startTransmit(call.media)
        call.player = player

    def stop_playback(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is None:
            return
        call.waiting = None
        if call.player is not None:
            if call.media is not None and not call.ended:
                _let_go(call.player.stopTransmit, call.media)
            self._gone.append((time.monotonic(), call.player))
            call.player = None

    def record(self, call_id: str, wav: Path) -> None:
        call = self.calls.get(call_id)
        if call is None or call.ended or call.media is None:
            return
        self.stop_recording(call_id)
        wav.parent.mkdir(parents=True, exist_ok=True)
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(str(wav))
        call.media.startTransmit(recorder)
        call.recorder = recorder

    def stop_recording(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is None or call.recorder is None:
            return
        if call.media is not None and not call.ended:
            _let_go(call.media.stopTransmit, call.recorder)
        # Let go: the bridge closes the file (and writes the WAV's sizes) on its next tick, on
        # its own thread (PJSIP 2.14+ removes ports asynchronously); see media.finished().
        call.recorder = None

    def level(self, call_id: str) -> int:
        call = self.calls.get(call_id)
        if call is None or call.media is None or call.ended:
            return 0
        # The call's port *transmits* the caller's audio into the bridge (its rx is what the
        # bridge sends the caller): measured, speech from a gateway reads 9-28, silence 0.
        return int(call.media.getTxLevel())

    def hangup(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is None or call.ended:
            return
        self.stop_playback(call_id)
        self.stop_recording(call_id)
        call.hangup(pj.CallOpParam())

    def run_once(self, timeout_ms: int) -> None:
        self.ep.libHandleEvents(timeout_ms)
        if self._gone and self._gone[0][0] < time.monotonic() - GRACE:
            cutoff = time.monotonic() - GRACE
            self._gone = [(at, obj) for at, obj in self._gone if at >= cutoff]

    def close(self) -> None:
        # Players, recorders and calls must go before the library: a pjsua2 object destroyed
        # after it (by the garbage collector, say) aborts the process.
        for key in list(self.calls):
            self.stop_playback(key)
            self.stop_recording(key)
        self.ep.hangupAllCalls()
        for _ in range(50):
            if not self.calls:
                break
            self.ep.libHandleEvents(10)
        self.calls.clear()
        deadline = time.monotonic() + GRACE
        while self._gone and time.monotonic() < deadline:  # the bridge's queued removals first
            self.ep.libHandleEvents(20)
        self._gone.clear()
        gc.collect()
        self.account.shutdown()
        del self.account
        self.ep.libDestroy()
        # pjsua2 allows one Endpoint per process: the next engine can be made only once this
        # one's C++ object is gone, so it must not wait for the garbage collector.
        del self.ep

    # --- from the call objects ----------------------------------------------------------

    def keyed(self, call_id: str, key: str) -> None:
        self.key_handler(call_id, key)

    def ended(self, call_id: str) -> None:
        self.stop_playback(call_id)
        self.stop_recording(call_id)
        call = self.calls.pop(call_id, None)
        if call is not None:
            self._gone.append((time.monotonic(), call))
        self.hangup_handler(call_id)
