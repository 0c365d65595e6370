"""The SIP agent's settings (HOTLINE_SIP_*), read strictly: a wrong value stops start-up with one line."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, replace

from gateway.settings import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ports one engine needs at the least: RTP and RTCP for each of the PyPI pjsua2 build's 4 calls.
PORTS_PER_ADDRESS = 8


@dataclass(frozen=True)
class SipSettings:
    """One listening address's settings: one engine, its own slice of the RTP ports."""

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


def _address(item: str, listen: str) -> tuple[str, int]:
    host, sep, port_text = item.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError("HOTLINE_SIP_LISTEN", f"want host:port[,host:port...], got {listen!r}")
    return host.strip("[]"), int(port_text)


def from_env(environ: Mapping[str, str]) -> tuple[SipSettings, ...]:
    """One SipSettings per address in HOTLINE_SIP_LISTEN, in its order; none when it is unset.

    Each address is answered by an engine of its own (a process: pjsua is one per process and
    the PyPI build takes 4 calls at once), and the RTP range is shared out between them.
    """
    listen = environ.get("HOTLINE_SIP_LISTEN", "").strip()
    if not listen:
        return ()
    addresses = [_address(item.strip(), listen) for item in listen.split(",") if item.strip()]
    if len(set(addresses)) != len(addresses):
        raise ConfigError("HOTLINE_SIP_LISTEN", f"an address is given twice: {listen!r}")
    peers: list[Network] = []
    for item in environ.get("HOTLINE_SIP_PEERS", "").split(","):
        if item.strip():
            try:
                peers.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                problem = f"not an address or network: {item.strip()!r}"
                raise ConfigError("HOTLINE_SIP_PEERS", problem) from None
    ports = environ.get("HOTLINE_SIP_RTP_PORTS", "16384-16483").strip()
    first_text, dash, last_text = ports.partition("-")
    if not dash or not first_text.isdigit() or not last_text.isdigit() or \
            not 1024 <= int(first_text) <= int(last_text) < 65536:
        raise ConfigError("HOTLINE_SIP_RTP_PORTS", f"want first-last, got {ports!r}")
    first, last = int(first_text), int(last_text)
    share = (last - first + 1) // len(addresses)
    if share < PORTS_PER_ADDRESS:
        raise ConfigError("HOTLINE_SIP_RTP_PORTS",
                          f"{ports} holds {last - first + 1} ports; {len(addresses)} addresses "
                          f"need at least {PORTS_PER_ADDRESS * len(addresses)}")
    base = SipSettings(host="", port=0, peers=tuple(peers),
                       number=environ.get("HOTLINE_SIP_NUMBER", "").strip())
    return tuple(replace(base, host=host, port=port, rtp_first=first + i * share,
                         rtp_last=first + (i + 1) * share - 1)
                 for i, (host, port) in enumerate(addresses))
