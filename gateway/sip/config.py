"""The SIP agent's settings (HOTLINE_SIP_*), read strictly: a wrong value stops start-up with one line."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.settings import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class SipSettings:
    host: str
    port: int
    peers: tuple[Network, ...]
    rtp_first: int = 16384
    rtp_last: int = 16483
    number: str = ""  # empty: the Request-URI's user part

    def allows(self, address: str) -> bool:
        """True only for a source address inside HOTLINE_SIP_PEERS."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.peers)


def from_env(environ: Mapping[str, str]) -> SipSettings | None:
    """None when HOTLINE_SIP_LISTEN is unset (no SIP agent)."""
    listen = environ.get("HOTLINE_SIP_LISTEN", "").strip()
    if not listen:
        return None
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError("HOTLINE_SIP_LISTEN", f"want host:port, got {listen!r}")
    peers: list[Network] = []
    for item in environ.get("HOTLINE_SIP_PEERS", "").split(","):
        if item.strip():
            try:
                peers.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                problem = f"not an address or network: {item.strip()!r}"
                raise ConfigError("HOTLINE_SIP_PEERS", problem) from None
    ports = environ.get("HOTLINE_SIP_RTP_PORTS", "16384-16483").strip()
    first, dash, last = ports.partition("-")
    if not dash or not first.isdigit() or not last.isdigit() or not 1024 <= int(first) <= int(last) < 65536:
        raise ConfigError("HOTLINE_SIP_RTP_PORTS", f"want first-last, got {ports!r}")
    return SipSettings(host=host.strip("[]"), port=int(port_text), peers=tuple(peers),
                       rtp_first=int(first), rtp_last=int(last),
                       number=environ.get("HOTLINE_SIP_NUMBER", "").strip())
