"""
Networks of client addresses, as C{--allow} and C{--proxy-from} name them,
and the key under which a per-client rule counts a client.

An IPv4 client reaching an IPv6 listener (C{::ffff:192.0.2.1}) is judged,
everywhere here, as the IPv4 address it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from socket import AF_INET, inet_pton

Network = IPv4Network | IPv6Network

IPV6_CLIENT_PREFIX = 64
"""
The prefix under which IPv6 clients are counted as one: one host usually
holds a whole /64, and can send from any address in it.
"""


class NetworkError(ValueError):
    """
    A network cannot be read.  C{str()} of it is one sentence for the
    operator, naming the text.
    """


def parseNetwork(text: str) -> Network:
    """
    Read a network in CIDR notation (C{192.0.2.0/24}, C{2001:db8::/32}), or
    one address (C{192.0.2.7}, a /32; C{::1}, a /128).  An IPv4-mapped IPv6
    network (C{::ffff:192.0.2.0/120}) is read as the IPv4 network it maps.

    @raise NetworkError: for anything else, and for a network with bits set
        past its prefix (C{10.1.2.3/8}), which is more likely a mistake
        than a way to write C{10.0.0.0/8}.
    """
    try:
        network = ip_network(text.strip(), strict=False)
    except ValueError:
        raise NetworkError(f"{text!r} is not an IP network (as 192.0.2.0/24 or 2001:db8::/32)") from None
    if network.network_address != ip_address(text.strip().split("/", 1)[0]):
        raise NetworkError(f"{text!r} has bits set past its prefix: did you mean {network}?")
    if isinstance(network, IPv6Network):
        mapped = network.network_address.ipv4_mapped
        if mapped is not None and network.prefixlen >= 96:
            return IPv4Network(f"{mapped}/{network.prefixlen - 96}")
    return network


def clientAddress(host: str) -> IPv4Address | IPv6Address | None:
    """
    @param host: a client's IP address as the transport gives it.
    @return: that address, IPv4-mapped ones as IPv4; L{None} if C{host} is
        not an IP address.
    """
    try:
        address = ip_address(host)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def clientKey(host: str) -> str:
    """
    @param host: a client's IP address as the transport gives it.
    @return: the key a per-client rule counts it under: an IPv4 address
        itself (IPv4-mapped ones too), an IPv6 address's /64
        (L{IPV6_CLIENT_PREFIX}), anything else as given.
    """
    address = clientAddress(host)
    if address is None:
        return host
    if isinstance(address, IPv4Address):
        return str(address)
    return str(IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))


class Networks:
    """
    A set of networks, which client addresses are matched against.
    """

    def __init__(self, networks: Iterable[Network]) -> None:
        self.networks = tuple(networks)
        self._v4 = tuple(n for n in self.networks if isinstance(n, IPv4Network))
        self._v6 = tuple(n for n in self.networks if isinstance(n, IPv6Network))
        # An IPv4 address is judged as an integer: parsing it with
        # ipaddress costs ten times more, once per connection.
        self._v4Masks = tuple((int(n.network_address), int(n.netmask)) for n in self._v4)

    @classmethod
    def parse(cls, texts: Iterable[str]) -> Networks:
        """
        @return: the networks C{texts} name, each read by L{parseNetwork}.
        @raise NetworkError: naming the first that cannot be read.
        """
        return cls(parseNetwork(text) for text in texts)

    def __contains__(self, host: object) -> bool:
        """
        @param host: a client's IP address as the transport gives it.
        @return: whether it is in one of the networks (an IPv4-mapped
            address as the IPv4 address it is); never for anything that is
            not an IP address.
        """
        if not isinstance(host, str):
            return False
        if ":" not in host:
            try:
                number = int.from_bytes(inet_pton(AF_INET, host), "big")
            except (OSError, ValueError):
                return False
            for network, mask in self._v4Masks:  # noqa: SIM110 (any() costs a generator per connection)
                if number & mask == network:
                    return True
            return False
        address = clientAddress(host)
        if isinstance(address, IPv4Address):
            return any(address in network for network in self._v4)
        if isinstance(address, IPv6Address):
            return any(address in network for network in self._v6)
        return False

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __str__(self) -> str:
        return ", ".join(str(network) for network in self.networks)


LOOPBACK = Networks([IPv4Network("127.0.0.0/8"), IPv6Network("::1/128")])
"""
The loopback networks: where, by default, a PROXY header is believed from.
"""
