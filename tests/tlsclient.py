"""
A TLS client that ends its input right after its requests, as C{socat} and
scripts do: its requests and its TLS close leave in one write.

The standard library's TLS on memory buffers, so that the same client
drives a protocol in memory and a real daemon over a socket.
"""

from __future__ import annotations

import contextlib
import socket
import ssl


class MemoryTLSClient:
    """
    One client connection's TLS, without I/O: feed it what the server sent
    (L{receive}), send what it has to send (L{toSend}).

    @ivar received: the application data received so far.
    @ivar closedByServer: whether the server's TLS close has arrived.
    """

    def __init__(self, version: ssl.TLSVersion) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = context.maximum_version = version
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname="localhost")
        self.received = b""
        self.closedByServer = False

    def handshake(self) -> bool:
        """
        @return: whether the handshake is complete.
        """
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    def version(self) -> str | None:
        return self._tls.version()

    def write(self, data: bytes) -> None:
        self._tls.write(data)

    def close(self) -> None:
        """
        Send the TLS close (C{close_notify}), and go on reading.
        """
        with contextlib.suppress(ssl.SSLWantReadError):
            self._tls.unwrap()

    def toSend(self) -> bytes:
        """
        @return: the bytes to send to the server now.
        """
        return self._outgoing.read()

    def receive(self, data: bytes) -> None:
        """
        Take what the server sent, and read the application data in it.
        """
        self._incoming.write(data)
        while not self.closedByServer:
            try:
                data = self._tls.read(65536)
            except ssl.SSLWantReadError:
                return
            except ssl.SSLZeroReturnError:
                data = b""
            # The server's TLS close reads as nothing (or raises).
            self.received += data
            self.closedByServer = not data


def requestsThenClose(
    address: tuple[str, int],
    requests: bytes,
    version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
    shutDownTCP: bool = False,
    timeout: float = 30.0,
    preamble: bytes = b"",
) -> MemoryTLSClient:
    """
    Connect to C{address} over TLS, send C{requests} and the TLS close in
    one write (and, with C{shutDownTCP}, shut down the sending side of the
    TCP connection), then read until the server closes.

    @param preamble: sent in the clear before the TLS handshake (a PROXY
        header).

    @return: the client, with what it received.
    """
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(address)
        s.sendall(preamble)
        client = MemoryTLSClient(version)
        while not client.handshake():
            s.sendall(client.toSend())
            data = s.recv(65536)
            if not data:
                raise ConnectionError("the server closed during the TLS handshake")
            client.receive(data)
        client.write(requests)
        client.close()
        s.sendall(client.toSend())
        if shutDownTCP:
            s.shutdown(socket.SHUT_WR)
        while data := s.recv(65536):
            client.receive(data)
        return client
