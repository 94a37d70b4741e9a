"""
L{avatard.service.tree}: the order in which the daemon stops.
"""

from __future__ import annotations

import os

from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError, ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from avatard.model import Avatar
from avatard.protocol.factory import WhoFactory
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from avatard.service.endpoint import EndpointService
from avatard.service.tree import AvatardService
from avatard.stores import parseDatabase
from tests.helpers import (
    TUTORIAL_REPLIES,
    ControlledStore,
    RecordingEndpoint,
    ThreadedMemoryReactor,
    poolThreads,
    tutorialDatabase,
)


class OrderedStopTests(SynchronousTestCase):
    """
    Stopping goes: stop listening, answer what was read, close the pool.
    """

    def setUp(self) -> None:
        self.events: list[str] = []
        self.store = ControlledStore()
        reactor = ThreadedMemoryReactor()
        self.factory = WhoFactory(Responder(self.store, ClassicRenderer(), reactor), reactor)
        path = tutorialDatabase(os.path.abspath(self.mktemp()))
        self.storage = parseDatabase(path).open(reactor, 3.0)
        self.service = AvatardService(
            self.storage.service,
            [EndpointService(RecordingEndpoint(self.events), self.factory, "tcp:8787")],
            self.factory.connections,
            "sqlite:test",
            shutdownTimeout=5,
        )

    def test_poolClosesOnlyAfterRepliesOwedAreWritten(self) -> None:
        """
        A lookup in flight when the stop begins is answered while the pool
        still runs; the pool's thread is gone once the connection is, and
        the stop completes.
        """
        self.service.privilegedStartService()
        with capturedLogs():
            self.service.startService()
        self.assertEqual(len(poolThreads()), 1)
        protocol = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"WHO yoen\n")
        with capturedLogs():
            stopping = self.service.stopService()
            self.assertEqual(self.events, ["listening", "stopped listening"])
            self.assertNoResult(stopping)
            self.store.answer(0, Avatar("yoen", "Van der Veld", "Yoen"))
            self.assertEqual(transport.value(), TUTORIAL_REPLIES["yoen"])
            self.assertTrue(transport.disconnecting)
            self.assertEqual(len(poolThreads()), 1)
            protocol.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(stopping)
        self.assertEqual(poolThreads(), [])

    def test_listenFailureExitsWithOneLine(self) -> None:
        """
        When the endpoint cannot listen, starting ends the process with one
        line naming the endpoint and the reason.
        """
        service = AvatardService(
            self.storage.service,
            [
                EndpointService(
                    RecordingEndpoint(self.events, CannotListenError("127.0.0.1", 8787, OSError("in use"))),
                    self.factory,
                    "tcp:8787",
                )
            ],
            self.factory.connections,
            "sqlite:test",
            shutdownTimeout=5,
        )
        with self.assertRaises(SystemExit) as raised:
            service.privilegedStartService()
        self.assertIn("avatard: cannot listen on tcp:8787: ", str(raised.exception.code))
        self.assertIn("in use", str(raised.exception.code))


class LogNameTests(SynchronousTestCase):
    def test_startAndStopLinesKeepTheirName(self) -> None:
        """
        The start and stop lines are logged under the name operators' log
        filters know, C{avatard.service.AvatardService}.
        """
        reactor = ThreadedMemoryReactor()
        factory = WhoFactory(Responder(ControlledStore(), ClassicRenderer(), reactor), reactor)
        storage = parseDatabase(tutorialDatabase(os.path.abspath(self.mktemp()))).open(reactor, 3.0)
        service = AvatardService(
            storage.service,
            [EndpointService(RecordingEndpoint([]), factory, "tcp:8787")],
            factory.connections,
            "sqlite:test",
            5,
        )
        with capturedLogs() as events:
            service.privilegedStartService()
            service.startService()
            self.successResultOf(service.stopService())
        names = {e["log_namespace"] for e in events if "avatard" in e.get("log_format", "")}
        self.assertEqual(names, {"avatard.service.AvatardService"})
