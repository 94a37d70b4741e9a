"""
L{EndpointService} and the one line that says why an endpoint cannot be
used.
"""

from __future__ import annotations

import os

from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase

from avatard.service.endpoint import EndpointService, ListenError
from avatard.tap import Options, makeService
from tests.helpers import (
    RecordingEndpoint,
    ThreadedMemoryReactor,
    tutorialDatabase,
)


class SocketActivationCheckTests(SynchronousTestCase):
    """
    C{--port systemd:...} without a socket from systemd.
    """

    def test_noSocketPassed(self) -> None:
        """
        One line saying that systemd passed no such socket, and what to do.
        """
        path = tutorialDatabase(os.path.abspath(self.mktemp()))
        for description in ("systemd:domain=INET:index=0", "systemd:domain=INET:name=avatard.socket"):
            options = Options()
            options.parseOptions(["--db", path, "--port", description])
            with self.assertRaises(SystemExit) as raised:
                makeService(options, ThreadedMemoryReactor())
            self.assertIn(
                f"--port {description!r}: systemd passed no such socket to this process",
                str(raised.exception.code),
            )


class ListenErrorTests(SynchronousTestCase):
    """
    A failure to listen is raised, not swallowed.
    """

    def test_endpointServiceRaisesListenError(self) -> None:
        """
        L{EndpointService} itself raises L{ListenError}, for embedders.
        """
        endpoint = RecordingEndpoint([], CannotListenError("", 1, OSError("denied")))
        with self.assertRaises(ListenError):
            EndpointService(endpoint, Factory.forProtocol(Protocol), "tcp:1").privilegedStartService()
