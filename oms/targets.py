"""Where the OMS may send messages: http(s) URLs whose host is a public address.

Webhook and callback URLs are set by whoever configures the OMS, and the worker POSTs
to them from inside the network: without a check, a URL could make it call cloud
metadata (169.254.169.254), a database's HTTP port or anything else only reachable
from inside. So hosts that are private, loopback, link-local, unspecified, multicast or
otherwise not public are refused, unless an allow-list (OMS_OUTGOING_ALLOW: CIDRs and
host names, comma-separated) permits them.

The check is made twice: when a URL is written (a literal address, or a name of the
`localhost` family: 422) and when a message is sent (every address a name resolves to,
so a public-looking name that resolves inside is refused too).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# what `make dev` and the tests allow: their partners run on this machine
LOOPBACK = "127.0.0.0/8,::1/128,localhost"


def _host_name(host: str) -> str:
    return host.strip().rstrip(".").lower()


@dataclass(frozen=True)
class AllowList:
    """Networks and host names messages may go to although they are not public."""

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, text: str | None) -> AllowList:
        """From `10.0.0.0/8, 192.168.1.5, ::1/128, wms.internal` (empty: nothing).
        Raises ValueError naming an entry that is neither a network nor a host name."""
        networks: list[Network] = []
        hosts: set[str] = set()
        for raw in (text or "").split(","):
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = _host_name(entry)
            if not name or any(ch in name for ch in "/:@ []") or not name.isascii():
                raise ValueError(f"OMS_OUTGOING_ALLOW: {entry!r} is neither a CIDR nor a host")
            hosts.add(name)
        return cls(tuple(networks), frozenset(hosts))

    def permits_host(self, host: str) -> bool:
        return _host_name(host) in self.hosts

    def permits_address(self, address: Address) -> bool:
        candidates: list[Address] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(
            a in net for a in candidates for net in self.networks if a.version == net.version
        )


def why_forbidden(address: Address) -> str | None:
    """What makes `address` no place to send messages to, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return why_forbidden(address.ipv4_mapped)
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a public address"
    return None


def literal_address(host: str) -> Address | None:
    """The address a URL's host names literally (`10.0.0.1`, `::1`, and the old short
    forms such as `127.1` or `2130706433` that resolvers still accept), else None."""
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        pass
    if bare and all(ch in "0123456789abcdefxABCDEFX." for ch in bare) and bare[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(bare))
        except OSError:
            return None
    return None


def is_local_name(host: str) -> bool:
    """`localhost` and the names under it (RFC 6761): always this machine."""
    name = _host_name(host)
    return name in ("localhost", "localhost.localdomain") or name.endswith(".localhost")


def refused_url(url: str, allow: AllowList) -> str | None:
    """Why a webhook or callback URL must not be stored (None: it may be). Checks what
    can be known without a DNS lookup: the scheme, a literal address, `localhost`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the URL cannot be parsed"
    if parts.scheme.lower() not in ("http", "https"):
        return "the URL must start with http:// or https://"
    host = parts.hostname
    if not host:
        return "the URL must name a host"
    if allow.permits_host(host):
        return None
    address = literal_address(host)
    if address is None and is_local_name(host):
        address = ipaddress.IPv4Address("127.0.0.1")
    if address is None:
        return None  # a name: checked against what it resolves to when a message is sent
    why = why_forbidden(address)
    if why is None or allow.permits_address(address):
        return None
    return f"{host} is {why}; messages are not sent there unless OMS_OUTGOING_ALLOW permits it"


def refused_addresses(host: str, addresses: Iterable[str], allow: AllowList) -> str | None:
    """Why a message must not go to `host` resolved to `addresses` (None: it may)."""
    if allow.permits_host(host):
        return None
    for text in addresses:
        address = literal_address(text)
        if address is None:
            return f"{host} resolved to {text!r}, which is not an address"
        why = why_forbidden(address)
        if why is not None and not allow.permits_address(address):
            shown = host if host.strip("[]") == text else f"{host} ({text})"
            return f"{shown} is {why}; not permitted by OMS_OUTGOING_ALLOW"
    return None
