"""
The PROXY protocol's header (versions 1 and 2), which HAProxy sends at the
start of a connection it passes on, before any byte of the client's: the
client's real address.

The specification is HAProxy's C{doc/proxy-protocol.txt}.  Only what a
server of TCP clients needs is read: the source and destination of a TCP
connection over IPv4 or IPv6.  Every other header that the specification
allows (version 2's C{LOCAL} command, sent by health checks; version 1's
C{PROXY UNKNOWN}; another address family or transport protocol) says
nothing about the client, and the connection is then taken as coming from
the proxy itself, as the specification says.  Version 2's extensions
(TLVs) are skipped.

L{readHeader} is given the bytes received so far, as often as more
arrive, and decides as early as it can: a connection whose first bytes
cannot begin a header is refused at once, not after a timeout.
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

from twisted.internet import address

V1_PREFIX = b"PROXY "
V1_LONGEST = 107
"""
The longest version 1 header, its CRLF included (section 2.1).
"""

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16
"""
The bytes of a version 2 header before its addresses: the signature, the
version and command, the family and protocol, and the length of the rest.
"""

_V2_LOCAL = 0x20
_V2_PROXY = 0x21
_V2_TCP4 = 0x11
_V2_TCP6 = 0x21
_V2_ADDRESSES = {
    family: (addressFamily, struct.Struct(layout), name)
    for family, addressFamily, layout, name in (
        (_V2_TCP4, socket.AF_INET, "!4s4sHH", "TCP4"),
        (_V2_TCP6, socket.AF_INET6, "!16s16sHH", "TCP6"),
    )
}
"""
The address blocks of the families a client's address is read from: the
socket family, the block's layout (source, destination, their ports),
compiled once, and the family's name in errors.
"""

TCPAddress = address.IPv4Address | address.IPv6Address


class ProxyHeaderError(ValueError):
    """
    The bytes received are not, and cannot become, a PROXY header.
    C{str()} of it says why, in one sentence.
    """


class ProxyHeader(NamedTuple):
    """
    A PROXY header read whole.

    @ivar source: the client's address, or L{None} when the header names
        none (a health check's C{LOCAL}, C{UNKNOWN}, another family): then
        the connection is the proxy's own.
    @ivar destination: the address the client connected to, or L{None}
        with C{source}.
    @ivar length: the header's length in bytes; the client's bytes follow.
    """

    source: TCPAddress | None
    destination: TCPAddress | None
    length: int


def readHeader(data: bytes | bytearray) -> ProxyHeader | None:
    """
    Read the PROXY header at the start of C{data}, the bytes received so
    far on a connection.

    @return: the header, once it is whole; L{None} while C{data} is the
        beginning of one, waiting for more.
    @raise ProxyHeaderError: C{data} does not begin with a header, or begins
        with one that is malformed.
    """
    if data[:1] == b"\r":
        return _readVersion2(data)
    if data[: len(V1_PREFIX)] == V1_PREFIX[: len(data)]:
        return _readVersion1(data)
    raise ProxyHeaderError("the connection does not start with a PROXY header")


def _readVersion1(data: bytes | bytearray) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, V1_LONGEST)
    if end < 0:
        if len(data) >= V1_LONGEST or b"\n" in data:
            raise ProxyHeaderError("the PROXY header (version 1) does not end with CRLF in 107 bytes")
        return None
    fields = bytes(data[len(V1_PREFIX) : end]).split(b" ")
    length = end + 2
    if fields[0] == b"UNKNOWN":
        # Whatever follows UNKNOWN is to be ignored (section 2.1).
        return ProxyHeader(None, None, length)
    if len(fields) != 5 or fields[0] not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError("the PROXY header (version 1) is not TCP4, TCP6 or UNKNOWN with its 4 fields")
    family = socket.AF_INET if fields[0] == b"TCP4" else socket.AF_INET6
    try:
        source = socket.inet_pton(family, fields[1].decode("ascii"))
        destination = socket.inet_pton(family, fields[2].decode("ascii"))
    except (OSError, UnicodeDecodeError):
        raise ProxyHeaderError(
            f"the PROXY header (version 1) does not hold two {fields[0].decode()} addresses"
        ) from None
    return ProxyHeader(
        _address(family, source, _port(fields[3])), _address(family, destination, _port(fields[4])), length
    )


def _port(field: bytes) -> int:
    if not field.isdigit() or len(field) > 5 or (field[:1] == b"0" and field != b"0"):
        raise ProxyHeaderError("the PROXY header (version 1) holds a port that is not a number up to 65535")
    port = int(field)
    if port > 65535:
        raise ProxyHeaderError("the PROXY header (version 1) holds a port that is not a number up to 65535")
    return port


def _readVersion2(data: bytes | bytearray) -> ProxyHeader | None:
    if data[: len(V2_SIGNATURE)] != V2_SIGNATURE[: len(data)]:
        raise ProxyHeaderError("the connection does not start with a PROXY header")
    if len(data) < V2_FIXED:
        return None
    command, family, rest = struct.unpack_from("!BBH", data, len(V2_SIGNATURE))
    if command not in (_V2_LOCAL, _V2_PROXY):
        raise ProxyHeaderError("the PROXY header (version 2) has an unknown version or command")
    length = V2_FIXED + rest
    if len(data) < length:
        return None
    if command == _V2_LOCAL:
        # A connection of the proxy's own (a health check): its addresses,
        # if any, are to be ignored (section 2.2).
        return ProxyHeader(None, None, length)
    addresses = _V2_ADDRESSES.get(family)
    if addresses is not None:
        addressFamily, layout, name = addresses
        if rest < layout.size:
            raise ProxyHeaderError(f"the PROXY header (version 2) is too short for its {name} addresses")
        source, destination, sourcePort, destinationPort = layout.unpack_from(data, V2_FIXED)
        return ProxyHeader(
            _address(addressFamily, source, sourcePort),
            _address(addressFamily, destination, destinationPort),
            length,
        )
    # UNSPEC, UDP, UNIX sockets: nothing a per-client rule could use; the
    # specification lets the receiver take the connection as the proxy's.
    return ProxyHeader(None, None, length)


def _address(family: int, packed: bytes, port: int) -> TCPAddress:
    """
    @return: the address C{packed} (4 or 16 bytes) and C{port}, written as
        a socket of C{family} reports its peer: dotted quads; IPv6 in its
        short form, an IPv4-mapped one as C{::ffff:192.0.2.1}.
    """
    # inet_ntop and inet_pton, not the ipaddress module: ten times faster,
    # on a path every connection through HAProxy takes.
    host = socket.inet_ntop(family, packed)
    if family == socket.AF_INET:
        return address.IPv4Address("TCP", host, port)
    return address.IPv6Address("TCP", host, port)
