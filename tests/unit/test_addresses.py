"""
L{avatard.addresses}: addresses written as an operator writes them.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.trial.unittest import SynchronousTestCase

from avatard.addresses import describeAddress
from avatard.addresses import describeAddress as describePeer


class DescribeAddressTests(SynchronousTestCase):
    def test_addresses(self) -> None:
        """
        IPv4 as host:port, IPv6 bracketed, a UNIX socket by its path, a
        UNIX socket's client (which has no name) as C{unix}, no address as
        C{-}.
        """
        self.assertEqual(describeAddress(IPv4Address("TCP", "192.0.2.1", 40000)), "192.0.2.1:40000")
        self.assertEqual(describeAddress(IPv6Address("TCP", "::1", 8787)), "[::1]:8787")
        self.assertEqual(describeAddress(UNIXAddress(b"/run/avatard.sock")), "unix:/run/avatard.sock")
        self.assertEqual(describeAddress(UNIXAddress("/run/a.sock")), "unix:/run/a.sock")
        self.assertEqual(describeAddress(UNIXAddress(None)), "unix")
        self.assertEqual(describeAddress(UNIXAddress(b"")), "unix")
        self.assertEqual(describeAddress(None), "-")


class DescribePeerTests(SynchronousTestCase):
    """
    Peers as the access log names them.
    """

    def test_describePeer(self) -> None:
        """
        IPv6 peers are bracketed; anything else without a name is C{-}.
        """
        self.assertEqual(describePeer(IPv6Address("TCP", "::1", 5)), "[::1]:5")
        self.assertEqual(describePeer(None), "-")
