"""
L{avatard.service.descriptions}: endpoint descriptions as the daemon reads
them.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from avatard.service.descriptions import DEFAULT_BACKLOG, endpointArguments, tlsEndpoint, withBacklog


class BacklogTests(SynchronousTestCase):
    """
    L{withBacklog}: a deep listen queue unless the operator sets one.
    """

    def test_addedWhereMissing(self) -> None:
        """
        TCP, TCP6, TLS and UNIX descriptions without C{backlog=} get the
        default.
        """
        for description in ("tcp:8787:interface=127.0.0.1", "tcp6:1", "ssl:443:privateKey=k", "unix:/s"):
            self.assertEqual(withBacklog(description), f"{description}:backlog={DEFAULT_BACKLOG}")

    def test_operatorsBacklogIsKept(self) -> None:
        """
        A C{backlog=} given is kept, and endpoints without a backlog (a socket
        handed over by systemd) are left alone.
        """
        for description in ("tcp:1:backlog=7", "systemd:domain=INET:index=0"):
            self.assertEqual(withBacklog(description), description)


class TLSEndpointTests(SynchronousTestCase):
    """
    L{tlsEndpoint}: which descriptions need Twisted's TLS support.
    """

    def test_tlsEndpointReadsDescriptionsAsTwistedDoes(self) -> None:
        """
        L{tlsEndpoint} finds the endpoint's type among the positional
        arguments, unescaped, skipping C{key=value} ones and wrappers.
        """
        self.assertEqual(endpointArguments(r"tcp6:8787:interface=\:\:1"), ["tcp6", "8787"])
        self.assertEqual(endpointArguments(r"unix:a\=b:mode=660"), ["unix", "a=b"])
        self.assertEqual(tlsEndpoint("haproxy:port=1:ssl:443"), "ssl")
        self.assertEqual(tlsEndpoint("TLS:/certificates"), "tls")
        self.assertIsNone(tlsEndpoint("tcp:443:interface=ssl"))
        self.assertIsNone(tlsEndpoint(r"unix:ssl\:x"))
        self.assertIsNone(tlsEndpoint("haproxy"))
