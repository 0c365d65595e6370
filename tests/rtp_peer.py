"""The media half of a test gateway: where SIPp's SDP points, it replays sip-tester's RTP captures
(keys as RFC 2833 events, speech as G.711 A-law) and keeps what the hotline sends the caller.

SIPp does the signalling; its scenario names this socket's port in the SDP, so the hotline's
audio comes here and can be counted, decoded and saved as a WAV. The captures are sent as they
were recorded (marker bits, the end packet three times), with sequence numbers and timestamps
carried on so that a key pressed twice is two events, as from a real phone.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path

CAPTURES = Path("/usr/share/sip-tester")
PCMA, PCMU, EVENT = 8, 0, 101
# Linux's SO_TIMESTAMPNS (asm-generic/socket.h; Python does not name it): the kernel stamps each
# datagram with its arrival time, handed over with it by recvmsg as SCM_TIMESTAMPNS (the same).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


@dataclass(frozen=True)
class Packet:
    at: float          # seconds since the capture's first packet
    marker: bool
    payload_type: int
    timestamp: int
    payload: bytes


def read_pcap(path: Path) -> list[Packet]:
    """The RTP packets of a libpcap file (Ethernet or Linux cooked capture, IPv4/UDP)."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    link = struct.unpack(endian + "I", data[20:24])[0]
    offset, packets, first = 24, [], None
    while offset + 16 <= len(data):
        sec, usec, length, _ = struct.unpack(endian + "IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + length]
        offset += 16 + length
        ip = frame[14:] if link == 1 else frame[16:]
        udp = ip[(ip[0] & 0x0F) * 4:]
        rtp = udp[8:]
        if len(rtp) < 12 or rtp[0] >> 6 != 2:
            continue
        at = sec + usec / 1e6
        first = at if first is None else first
        packets.append(Packet(at - first, bool(rtp[1] & 0x80), rtp[1] & 0x7F,
                              struct.unpack("!I", rtp[4:8])[0], rtp[12:]))
    return packets


def key_capture(key: str) -> list[Packet]:
    name = {"#": "pound", "*": "star"}.get(key, key)
    return read_pcap(CAPTURES / f"dtmf_2833_{name}.pcap")


def alaw_to_linear(byte: int) -> int:
    a = byte ^ 0x55
    exponent, mantissa = (a >> 4) & 0x07, a & 0x0F
    value = (mantissa << 4) + 8 if exponent == 0 else ((mantissa << 4) + 0x108) << (exponent - 1)
    return value if a & 0x80 else -value


def ulaw_to_linear(byte: int) -> int:
    u = ~byte & 0xFF
    exponent, mantissa = (u >> 4) & 0x07, u & 0x0F
    value = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -value if u & 0x80 else value


DECODE = {PCMA: [alaw_to_linear(b) for b in range(256)],
          PCMU: [ulaw_to_linear(b) for b in range(256)]}


@dataclass
class Heard:
    at: float           # time.monotonic() when this process read it (for timing against the test)
    payload_type: int
    payload: bytes
    seq: int = 0
    timestamp: int = 0
    wire: float = 0.0   # when the kernel received it (SO_TIMESTAMPNS): how the sender paced it,
                        # whatever kept this process from reading at once


class RtpPeer:
    """One UDP socket: sends captures to the hotline, keeps every packet the hotline sends."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # a busy reader loses nothing
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.heard: list[Heard] = []
        self.remote: tuple[str, int] | None = None
        self.first_heard = threading.Event()
        self._seq = 1000
        self._ts = 0
        self._ssrc = 0x5EED0001
        self._stop = threading.Event()
        self._send_lock = threading.Lock()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancillary, _flags, source = self.sock.recvmsg(2048, 64)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) < 12 or data[0] >> 6 != 2:
                continue
            wire = 0.0
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanos = struct.unpack("qq", value[:16])
                    wire = seconds + nanos / 1e9
            self.remote = self.remote or source
            seq, ts = struct.unpack("!HI", data[2:8])
            self.heard.append(Heard(time.monotonic(), data[1] & 0x7F, data[12:], seq, ts, wire))
            self.first_heard.set()

    def send(self, packets: list[Packet]) -> None:
        """Replay `packets` at their recorded pace, continuing this peer's sequence and clock."""
        if not packets or self.remote is None:
            return
        with self._send_lock:
            start = time.monotonic()
            base_ts, first_ts = self._ts, packets[0].timestamp
            for packet in packets:
                delay = start + packet.at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                ts = (base_ts + packet.timestamp - first_ts) & 0xFFFFFFFF
                header = struct.pack("!BBHII", 0x80, packet.payload_type | (0x80 if packet.marker else 0),
                                     self._seq & 0xFFFF, ts, self._ssrc)
                self.sock.sendto(header + packet.payload, self.remote)
                self._seq += 1
            span = packets[-1].timestamp - first_ts
            self._ts = (base_ts + span + 960) & 0xFFFFFFFF

    def press(self, key: str) -> None:
        self.send(key_capture(key))

    def speak(self) -> None:
        self.send(read_pcap(CAPTURES / "g711a.pcap"))

    def audio(self) -> list[Heard]:
        return [h for h in self.heard if h.payload_type in (PCMA, PCMU)]

    def loud_packets(self, threshold: int = 500) -> int:
        """Packets of the hotline's audio with a sample louder than silence."""
        return sum(1 for h in self.audio()
                   if max(abs(DECODE[h.payload_type][b]) for b in h.payload) > threshold)

    def save(self, path: Path) -> Path:
        """What the caller heard as a 16-bit 8 kHz WAV."""
        samples = bytearray()
        for h in self.audio():
            table = DECODE[h.payload_type]
            samples += b"".join(struct.pack("<h", table[b]) for b in h.payload)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(bytes(samples))
        return path

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(timeout=2)
