"""SIPp scenarios of a GSM gateway's call, written per test: the INVITE as gateways send it, then
pauses, SIP INFO keys and who hangs up. The media port in the SDP is the test's RtpPeer."""

from __future__ import annotations

from pathlib import Path

CODECS = {"PCMA": (8, "a=rtpmap:8 PCMA/8000"), "PCMU": (0, "a=rtpmap:0 PCMU/8000")}

_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="{name}">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:{caller}@[local_ip]:[local_port]
Max-Forwards: 70
{extra}Content-Type: application/sdp
Content-Length: [len]

v=0
o=gw 53655765 2353687637 IN IP4 [local_ip]
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio {rtp_port} RTP/AVP {payloads} 101
{rtpmaps}
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>
{ignore_200}  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: sip:{caller}@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0
]]></send>
"""

_INFO = """  <send retrans="500"><![CDATA[
INFO [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {cseq} INFO
Contact: sip:{caller}@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/dtmf-relay
Content-Length: [len]

Signal={key}
Duration=160
]]></send>
  <recv response="200"/>
"""

_BYE = """  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {cseq} BYE
Contact: sip:{caller}@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200"/>
"""

_THEIR_BYE = """  <recv request="BYE" timeout="{timeout}"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
]]></send>
"""


def gateway_call(path: Path, *, rtp_port: int, caller: str = "13800138000",
                 codecs: tuple[str, ...] = ("PCMA", "PCMU"), steps: tuple[tuple[str, str], ...] = (),
                 asserted: str = "", ignore_first_200: bool = False) -> Path:
    """Write a scenario: INVITE (offering `codecs` in that order), ACK, then `steps`, each
    ("pause", ms) | ("info", key) | ("bye", "") | ("their_bye", timeout ms)."""
    extra = f"P-Asserted-Identity: <sip:{asserted}@[local_ip]>\n" if asserted else ""
    # SIPp takes a 200 it has seen as a retransmission: pausing before the ACK lets the hotline
    # send its 200 again (RFC 3261 17.2.1), which the message log then shows twice.
    ignore = '  <pause milliseconds="1200"/>\n' if ignore_first_200 else ""
    parts = [_HEAD.format(name="a GSM gateway's call", caller=caller, extra=extra,
                          rtp_port=rtp_port, payloads=" ".join(str(CODECS[c][0]) for c in codecs),
                          rtpmaps="\n".join(CODECS[c][1] for c in codecs), ignore_200=ignore)]
    cseq = 2
    for kind, value in steps:
        if kind == "pause":
            parts.append(f'  <pause milliseconds="{value}"/>\n')
        elif kind == "info":
            parts.append(_INFO.format(caller=caller, cseq=cseq, key=value))
            cseq += 1
        elif kind == "bye":
            parts.append(_BYE.format(caller=caller, cseq=cseq))
            cseq += 1
        elif kind == "their_bye":
            parts.append(_THEIR_BYE.format(timeout=value))
        else:
            raise ValueError(kind)
    parts.append("</scenario>\n")
    path.write_text("".join(parts), encoding="ascii")
    return path
