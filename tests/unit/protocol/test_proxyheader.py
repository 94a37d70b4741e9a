"""
L{avatard.protocol.proxyheader}: PROXY headers, versions 1 and 2, read from
the bytes received so far.
"""

from __future__ import annotations

import socket
import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.trial.unittest import SynchronousTestCase

from avatard.protocol.proxyheader import V2_SIGNATURE, ProxyHeader, ProxyHeaderError, readHeader

V1_TCP4 = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 8787\r\n"
V1_TCP6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 8787\r\n"


def v2(command: int, family: int, addresses: bytes, extensions: bytes = b"") -> bytes:
    """
    @return: a version 2 header: C{command} (0 LOCAL, 1 PROXY), C{family}
        (its address family and protocol byte), then C{addresses} and
        C{extensions} (TLVs).
    """
    rest = addresses + extensions
    return V2_SIGNATURE + struct.pack("!BBH", 0x20 | command, family, len(rest)) + rest


def tcp4(source: str, destination: str, sourcePort: int, destinationPort: int) -> bytes:
    return (
        socket.inet_pton(socket.AF_INET, source)
        + socket.inet_pton(socket.AF_INET, destination)
        + struct.pack("!HH", sourcePort, destinationPort)
    )


def tcp6(source: str, destination: str, sourcePort: int, destinationPort: int) -> bytes:
    return (
        socket.inet_pton(socket.AF_INET6, source)
        + socket.inet_pton(socket.AF_INET6, destination)
        + struct.pack("!HH", sourcePort, destinationPort)
    )


V2_TCP4 = v2(1, 0x11, tcp4("192.0.2.7", "198.51.100.1", 40000, 8787))
V2_TCP6 = v2(1, 0x21, tcp6("2001:db8::7", "2001:db8::1", 40000, 8787))
V2_LOCAL = v2(0, 0x11, tcp4("127.0.0.1", "127.0.0.1", 50000, 8787))


class Version1Tests(SynchronousTestCase):
    def test_tcp4(self) -> None:
        """
        A TCP4 header gives the client's and the server's IPv4 addresses
        and ports, and its length, which ends at its CRLF.
        """
        self.assertEqual(
            readHeader(V1_TCP4 + b"WHO yoen\n"),
            ProxyHeader(
                IPv4Address("TCP", "192.0.2.7", 40000),
                IPv4Address("TCP", "198.51.100.1", 8787),
                len(V1_TCP4),
            ),
        )

    def test_tcp6(self) -> None:
        """
        A TCP6 header gives IPv6 addresses.
        """
        self.assertEqual(
            readHeader(V1_TCP6),
            ProxyHeader(
                IPv6Address("TCP", "2001:db8::7", 40000),
                IPv6Address("TCP", "2001:db8::1", 8787),
                len(V1_TCP6),
            ),
        )

    def test_unknown(self) -> None:
        """
        C{PROXY UNKNOWN}, with or without more before its CRLF, names no
        client: the connection is the proxy's own.
        """
        for header in (b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"):
            self.assertEqual(readHeader(header + b"PING\n"), ProxyHeader(None, None, len(header)))

    def test_splitAcrossReads(self) -> None:
        """
        Every beginning of a header, down to nothing, waits for more.
        """
        for end in range(len(V1_TCP4)):
            self.assertIsNone(readHeader(V1_TCP4[:end]), V1_TCP4[:end])

    def test_requestLineIsRefusedAtOnce(self) -> None:
        """
        A connection that starts with a request line, or anything else that
        cannot begin a header, is refused from its first byte.
        """
        for data in (b"W", b"WHO yoen\n", b"PROXX", b"proxy TCP4", b"\x00", b"GET / HTTP/1.0\r\n"):
            with self.assertRaises(ProxyHeaderError) as raised:
                readHeader(data)
            self.assertEqual(str(raised.exception), "the connection does not start with a PROXY header")

    def test_malformed(self) -> None:
        """
        A version 1 header with a wrong protocol, a missing or extra field,
        an address of the wrong family or a bad port is refused, once its
        CRLF has come.
        """
        for header in (
            b"PROXY TCP5 192.0.2.7 198.51.100.1 40000 8787\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 40000\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 8787 1\r\n",
            b"PROXY TCP4  192.0.2.7 198.51.100.1 40000 8787\r\n",
            b"PROXY TCP4 2001:db8::7 198.51.100.1 40000 8787\r\n",
            b"PROXY TCP6 192.0.2.7 2001:db8::1 40000 8787\r\n",
            b"PROXY TCP4 192.0.2.256 198.51.100.1 40000 8787\r\n",
            b"PROXY TCP4 192.0.2.07 198.51.100.1 40000 8787\r\n",
            b"PROXY TCP6 2001:db8::7 2001:db8::g 40000 8787\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 8787\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 -1 8787\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 040000 8787\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 4e4 8787\r\n",
            b"PROXY \r\n",
        ):
            self.assertRaises(ProxyHeaderError, readHeader, header)

    def test_lineFeedAloneOrNoEnd(self) -> None:
        """
        A header ending in LF alone, or without a CRLF in its 107 bytes, is
        refused.
        """
        self.assertRaises(ProxyHeaderError, readHeader, V1_TCP4.replace(b"\r\n", b"\n"))
        longest = b"PROXY UNKNOWN " + b"x" * (107 - 16)
        self.assertIsNone(readHeader(longest))
        self.assertEqual(readHeader(longest + b"\r\n"), ProxyHeader(None, None, 107))
        self.assertRaises(ProxyHeaderError, readHeader, longest + b"x\r")


class Version2Tests(SynchronousTestCase):
    def test_tcp4(self) -> None:
        """
        A PROXY command over TCP and IPv4 gives both addresses; the
        client's bytes follow its length.
        """
        self.assertEqual(
            readHeader(V2_TCP4 + b"WHO yoen\n"),
            ProxyHeader(
                IPv4Address("TCP", "192.0.2.7", 40000),
                IPv4Address("TCP", "198.51.100.1", 8787),
                len(V2_TCP4),
            ),
        )

    def test_tcp6(self) -> None:
        """
        A PROXY command over TCP and IPv6 gives IPv6 addresses; an
        IPv4-mapped one is written as a dual-stack socket would.
        """
        self.assertEqual(
            readHeader(V2_TCP6),
            ProxyHeader(
                IPv6Address("TCP", "2001:db8::7", 40000),
                IPv6Address("TCP", "2001:db8::1", 8787),
                len(V2_TCP6),
            ),
        )
        mapped = readHeader(v2(1, 0x21, tcp6("::ffff:192.0.2.7", "::1", 1, 2)))
        assert mapped is not None
        self.assertEqual(mapped.source, IPv6Address("TCP", "::ffff:192.0.2.7", 1))

    def test_local(self) -> None:
        """
        A LOCAL command (a health check of the proxy's own) names no
        client, whatever addresses it holds.
        """
        self.assertEqual(readHeader(V2_LOCAL + b"PING\n"), ProxyHeader(None, None, len(V2_LOCAL)))
        self.assertEqual(readHeader(v2(0, 0x00, b"")), ProxyHeader(None, None, 16))

    def test_unknownFamilies(self) -> None:
        """
        UNSPEC, UDP and UNIX socket addresses name no client a per-client
        rule could use: the connection is the proxy's own.
        """
        for family, addresses in (
            (0x00, b""),
            (0x12, tcp4("192.0.2.7", "198.51.100.1", 1, 2)),
            (0x31, b"/run/client".ljust(108, b"\0") + b"/run/server".ljust(108, b"\0")),
        ):
            header = v2(1, family, addresses)
            self.assertEqual(readHeader(header), ProxyHeader(None, None, len(header)))

    def test_extensionsAreSkipped(self) -> None:
        """
        Extensions (TLVs) after the addresses are part of the header.
        """
        header = v2(1, 0x11, tcp4("192.0.2.7", "198.51.100.1", 40000, 8787), b"\x04\x00\x02ab" * 100)
        read = readHeader(header + b"PING\n")
        assert read is not None
        self.assertEqual((read.source, read.length), (IPv4Address("TCP", "192.0.2.7", 40000), len(header)))

    def test_splitAcrossReads(self) -> None:
        """
        Every beginning of a header waits for more.
        """
        for header in (V2_TCP4, V2_TCP6, V2_LOCAL):
            for end in range(len(header)):
                self.assertIsNone(readHeader(header[:end]), header[:end])

    def test_badSignatureIsRefusedAtOnce(self) -> None:
        """
        Bytes that start like the signature and then leave it are refused
        as soon as they do.
        """
        for data in (b"\r\n\r\n\x01", b"\r\r", b"\r\n\r\n\x00\r\nQUIT\r"):
            with self.assertRaises(ProxyHeaderError) as raised:
                readHeader(data)
            self.assertEqual(str(raised.exception), "the connection does not start with a PROXY header")

    def test_badVersionOrCommand(self) -> None:
        """
        A version other than 2, or a command other than LOCAL and PROXY, is
        refused as soon as its byte has come.
        """
        for byte in (0x11, 0x31, 0x22, 0x2F):
            header = bytearray(V2_TCP4[:16])
            header[12] = byte
            self.assertRaises(ProxyHeaderError, readHeader, bytes(header))

    def test_addressesTooShort(self) -> None:
        """
        A PROXY command whose length leaves no room for its addresses is
        refused.
        """
        self.assertRaises(ProxyHeaderError, readHeader, v2(1, 0x11, b"\x7f\0\0\x01"))
        self.assertRaises(ProxyHeaderError, readHeader, v2(1, 0x21, tcp4("192.0.2.7", "192.0.2.1", 1, 2)))


class PropertyTests(SynchronousTestCase):
    """
    Arbitrary bytes, and valid headers cut anywhere.
    """

    @given(st.binary(max_size=300))
    def test_anyBytes(self, data: bytes) -> None:
        """
        Whatever the bytes, the reader waits, reads a header that ends
        within them, or refuses with L{ProxyHeaderError}: nothing else.
        """
        try:
            header = readHeader(data)
        except ProxyHeaderError:
            return
        if header is not None:
            self.assertLessEqual(header.length, len(data))

    @given(
        st.sampled_from([V1_TCP4, V1_TCP6, V2_TCP4, V2_TCP6, V2_LOCAL, b"PROXY UNKNOWN\r\n"]),
        st.binary(max_size=50),
    )
    def test_validHeaderAndAnythingAfter(self, header: bytes, after: bytes) -> None:
        """
        A valid header is read whole, whatever follows it, and only once
        it is whole.
        """
        read = readHeader(header + after)
        assert read is not None
        self.assertEqual(read.length, len(header))
        self.assertIsNone(readHeader(header[:-1]))
