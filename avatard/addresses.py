"""
The one way addresses are written, in logs, the access log and the start
line: as an operator would write them.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.interfaces import IAddress


def describeAddress(address: IAddress | None) -> str:
    """
    @return: C{192.0.2.1:40000}, C{[2001:db8::1]:40000},
        C{unix:/run/avatard.sock} (a listening socket), C{unix} (a UNIX
        socket's client, which has no name of its own), or C{-} when there
        is no address.
    """
    if isinstance(address, IPv4Address):
        return f"{address.host}:{address.port}"
    if isinstance(address, IPv6Address):
        return f"[{address.host}]:{address.port}"
    if isinstance(address, UNIXAddress):
        name = address.name
        if not name:
            return "unix"
        return f"unix:{name.decode('utf-8', 'replace') if isinstance(name, bytes) else name}"
    if address is None:
        return "-"
    return str(address)
