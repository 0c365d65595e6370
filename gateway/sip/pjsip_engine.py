"""PJSIP (pjsua2) behind the Engine interface: one thread runs its event loop. First step: INVITE triage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pjsua2 as pj

from gateway.sip.engine import IncomingCall


def _user(uri: str) -> str:
    part = uri.split("sip:", 1)[-1]
    return part.split("@", 1)[0] if "@" in part else ""


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, engine: PjsipEngine) -> None:
        super().__init__()
        self.engine = engine

    def onIncomingCall(self, prm: Any) -> None:
        call = pj.Call(self, prm.callId)
        info = call.getInfo()
        source = str(prm.rdata.srcAddress).rsplit(":", 1)[0].strip("[]")
        incoming = IncomingCall(call_id=str(prm.callId), caller=_user(info.remoteUri),
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
    def __init__(self, host: str, port: int) -> None:
        self.decide: Callable[[IncomingCall], bool] = lambda _c: False
        self.calls: dict[str, Any] = {}
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.logConfig.level = 1
        cfg.logConfig.consoleLevel = 1
        self.ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.boundAddress = host
        tcfg.port = port
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.ep.audDevManager().setNullDev()
        self.ep.codecSetPriority("PCMA/8000", 255)
        self.ep.codecSetPriority("PCMU/8000", 254)
        self.ep.libStart()
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:hotline@{host}:{port}"
        self.account = _Account(self)
        self.account.create(acfg)

    def on_call(self, handler: Callable[[IncomingCall], bool]) -> None:
        self.decide = handler

    def run_once(self, timeout_ms: int) -> None:
        self.ep.libHandleEvents(timeout_ms)

    def close(self) -> None:
        # Call objects must go before the library: their destructors touch pjsua's call table.
        self.ep.hangupAllCalls()
        self.calls.clear()
        self.account.shutdown()
        del self.account
        self.ep.libDestroy()
