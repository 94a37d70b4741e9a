"""
The service tree: what C{makeService} builds, and how it starts and stops.
"""

from __future__ import annotations

import os

from twisted.application.service import IService, MultiService
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import CannotListenError, ConnectionDone
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from avatard.model import Avatar
from avatard.ops.access import AccessLog, AccessLogService
from avatard.ops.hangup import ReopenOnHangup
from avatard.protocol.factory import WhoFactory
from avatard.request.cache import WatchedReplyCache
from avatard.request.coalesce import CoalescingStore
from avatard.request.observe import Observers
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from avatard.service.endpoint import EndpointService, ListenError
from avatard.service.tree import AvatardService
from avatard.stores import parseDatabase
from avatard.stores.pool import PoolService
from avatard.tap import Options, makeService
from tests.helpers import (
    TUTORIAL_REPLIES,
    ControlledStore,
    ThreadedMemoryReactor,
    poolThreads,
    tutorialDatabase,
)


def options(*argv: str) -> Options:
    o = Options()
    o.parseOptions(list(argv))
    return o


class MakeServiceTests(SynchronousTestCase):
    """
    The shape of what L{makeService} returns, before anything starts.
    """

    def setUp(self) -> None:
        self.path = tutorialDatabase(os.path.abspath(self.mktemp()))
        self.reactor = ThreadedMemoryReactor()

    def test_multiServiceOfPoolAndServer(self) -> None:
        """
        A L{MultiService} holding the pool service, the server service and
        the service that reopens log files on SIGHUP, nothing else (without
        an access log or metrics), none of them running yet.
        """
        service = makeService(options("--db", self.path), self.reactor)
        self.assertIsInstance(service, MultiService)
        children = list(service)
        self.assertEqual([c.name for c in children], ["pool", "server", "reopen-on-hangup"])
        self.assertTrue(IService.providedBy(service))
        self.assertIs(service.getServiceNamed("pool"), service.storage)
        self.assertIs(service.getServiceNamed("server"), service.server)
        self.assertFalse(any(c.running for c in children))
        self.assertEqual(poolThreads(), [])
        self.assertEqual(self.reactor.tcpServers, [])

    def test_serverServesTheDatabaseThroughThePool(self) -> None:
        """
        The server's factory answers from the database, through a store
        that reads an SQLite file in the reactor thread where it can (here,
        before the pool is even started), and batches lookups.
        """
        service = makeService(options("--db", self.path, "--max-line", "300"), self.reactor)
        factory = service.server.factory
        self.assertIsInstance(factory, WhoFactory)
        store = factory.responder.whoPath.store
        assert isinstance(store, CoalescingStore)
        self.assertEqual(self.successResultOf(store.lookup("yoen")), Avatar("yoen", "Van der Veld", "Yoen"))
        self.assertIsInstance(factory.responder.whoPath.renderer, ClassicRenderer)
        self.assertEqual(factory.limits.maxLine, 300)
        self.assertIs(factory.clock, self.reactor)
        cache = factory.responder.cache
        # SQLite tells when it changes: the cache watches it.
        assert isinstance(cache, WatchedReplyCache)
        self.assertEqual((cache.watch, cache.clock), (store.store, self.reactor))

    def test_zeroCacheSizeOrTTLTurnsTheCacheOff(self) -> None:
        """
        C{--cache-size 0} or C{--cache-ttl 0}: every request is a lookup.
        """
        for option in ("--cache-size", "--cache-ttl"):
            service = makeService(options("--db", self.path, option, "0"), self.reactor)
            self.assertIsNone(service.server.factory.responder.cache)

    def test_defaultPortIsLoopback8787(self) -> None:
        """
        By default the daemon listens on 127.0.0.1:8787 only.
        """
        service = makeService(options("--db", self.path), self.reactor)
        service.privilegedStartService()
        self.addCleanup(service.stopService)
        [(port, factory, backlog, interface)] = self.reactor.tcpServers
        self.assertEqual((port, interface, backlog), (8787, "127.0.0.1", 4096))
        self.assertIs(factory, service.server.factory)

    def test_portDescriptionIsAnEndpoint(self) -> None:
        """
        C{--port} takes any server endpoint description, backlog included.
        """
        service = makeService(options("--db", self.path, "--port", "tcp:9000:backlog=1024"), self.reactor)
        service.privilegedStartService()
        self.addCleanup(service.stopService)
        [(port, _, backlog, interface)] = self.reactor.tcpServers
        self.assertEqual((port, backlog, interface), (9000, 1024, ""))

    def test_unixSocket(self) -> None:
        """
        C{unix:PATH} listens on a UNIX socket.
        """
        service = makeService(options("--db", self.path, "--port", "unix:/run/avatard.sock"), self.reactor)
        service.privilegedStartService()
        self.addCleanup(service.stopService)
        self.assertEqual(self.reactor.unixServers[0][0], "/run/avatard.sock")

    def test_unusablePortDescriptionExitsWithOneLine(self) -> None:
        """
        A C{--port} no endpoint parser accepts ends the process with a
        message naming it.
        """
        with self.assertRaises(SystemExit) as raised:
            makeService(options("--db", self.path, "--port", "carrier-pigeon:42"), self.reactor)
        self.assertIn("--port 'carrier-pigeon:42' cannot be used", str(raised.exception.code))

    def test_unusableDatabaseExitsWithOneLineAndCreatesNothing(self) -> None:
        """
        A missing database ends the process with a message naming it; no
        file is created.
        """
        missing = os.path.abspath(self.mktemp())
        with self.assertRaises(SystemExit) as raised:
            makeService(options("--db", missing), self.reactor)
        self.assertEqual(
            raised.exception.code,
            f"avatard: database {missing} does not exist (create it with: avatard init {missing})",
        )
        self.assertFalse(os.path.exists(missing))


class StartStopTests(SynchronousTestCase):
    """
    Starting and stopping the whole tree for real (threads included), on a
    memory reactor.
    """

    def test_startThenStopLeavesNothingRunning(self) -> None:
        """
        After a start, a lookup and a stop: the port is closed, the pool is
        closed and its thread is gone.
        """
        path = tutorialDatabase(os.path.abspath(self.mktemp()))
        reactor = ThreadedMemoryReactor()
        service = makeService(options("--db", path, "--port", "tcp:0"), reactor)
        service.privilegedStartService()
        with capturedLogs() as events:
            service.startService()
        self.assertEqual(events[-1]["where"], "0.0.0.0:0")
        self.assertEqual(events[-1]["database"], f"sqlite:{path}")
        self.assertTrue(service.storage.running)
        store = service.server.factory.responder.whoPath.store
        self.assertEqual(reactor.drive(store.lookup("yoen")), Avatar("yoen", "Van der Veld", "Yoen"))
        self.assertEqual(len(poolThreads()), 1)
        with capturedLogs():
            self.successResultOf(service.stopService())
        self.assertFalse(service.running)
        self.assertFalse(service.storage.running)
        self.assertIsNone(service.server.port)
        self.assertEqual(poolThreads(), [])


@implementer(IListeningPort)
class RecordingPort:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def startListening(self) -> None:
        pass

    def stopListening(self) -> Deferred[None]:
        self.events.append("stopped listening")
        return succeed(None)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 8787)


@implementer(IStreamServerEndpoint)
class RecordingEndpoint:
    def __init__(self, events: list[str], error: Exception | None = None) -> None:
        self.events = events
        self.error = error

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        if self.error is not None:
            d: Deferred[IListeningPort] = Deferred()
            d.errback(self.error)
            return d
        self.events.append("listening")
        return succeed(RecordingPort(self.events))


class RecordingPoolService(PoolService):
    def __init__(self, events: list[str], service: PoolService) -> None:
        super().__init__(service.pool)
        self.events = events

    def stopService(self) -> Deferred[None]:
        self.events.append("pool closed")
        return super().stopService()


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
        storage = parseDatabase(path).open(reactor, 3.0)
        assert isinstance(storage.service, PoolService)
        pool = RecordingPoolService(self.events, storage.service)
        self.service = AvatardService(
            pool,
            EndpointService(RecordingEndpoint(self.events), self.factory, "tcp:8787"),
            "sqlite:test",
            shutdownTimeout=5,
        )

    def test_poolClosesOnlyAfterRepliesOwedAreWritten(self) -> None:
        """
        A lookup in flight when the stop begins is answered before the pool
        closes; the stop completes once the connection is gone.
        """
        self.service.privilegedStartService()
        with capturedLogs():
            self.service.startService()
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
            self.assertEqual(self.events, ["listening", "stopped listening"])
            protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.events, ["listening", "stopped listening", "pool closed"])
        self.successResultOf(stopping)
        self.assertEqual(poolThreads(), [])

    def test_listenFailureExitsWithOneLine(self) -> None:
        """
        When the endpoint cannot listen, starting ends the process with one
        line naming the endpoint and the reason.
        """
        service = AvatardService(
            self.service.storage,
            EndpointService(
                RecordingEndpoint(self.events, CannotListenError("127.0.0.1", 8787, OSError("in use"))),
                self.factory,
                "tcp:8787",
            ),
            "sqlite:test",
            shutdownTimeout=5,
        )
        with self.assertRaises(SystemExit) as raised:
            service.privilegedStartService()
        self.assertIn("avatard: cannot listen on tcp:8787: ", str(raised.exception.code))
        self.assertIn("in use", str(raised.exception.code))

    def test_endpointServiceRaisesListenError(self) -> None:
        """
        L{EndpointService} itself raises L{ListenError}, for embedders.
        """
        endpoint = RecordingEndpoint(self.events, CannotListenError("", 1, OSError("denied")))
        with self.assertRaises(ListenError):
            EndpointService(endpoint, self.factory, "tcp:1").privilegedStartService()


class OperationsWiringTests(SynchronousTestCase):
    """
    What C{--access-log} and C{--metrics} add to the tree, and the start
    line's settings.
    """

    def setUp(self) -> None:
        self.path = tutorialDatabase(os.path.abspath(self.mktemp()))
        self.reactor = ThreadedMemoryReactor()

    def test_accessLogFile(self) -> None:
        """
        C{--access-log PATH}: a file log observes requests, is reopened on
        SIGHUP and closed at stop.
        """
        log = os.path.abspath(self.mktemp())
        service = makeService(options("--db", self.path, "--access-log", log), self.reactor)
        observer = service.server.factory.observer
        assert isinstance(observer, AccessLog)
        self.addCleanup(observer.close)
        self.assertEqual(observer.path, log)
        self.assertIsInstance(service.getServiceNamed("access-log"), AccessLogService)
        hangup = service.getServiceNamed("reopen-on-hangup")
        assert isinstance(hangup, ReopenOnHangup)
        self.assertEqual(hangup.reopeners, [observer.reopen])

    def test_accessLogToMainLogWithMetrics(self) -> None:
        """
        C{--access-log -} with C{--metrics}: both observe every request.
        """
        service = makeService(
            options("--db", self.path, "--access-log", "-", "--metrics", "tcp:0"), self.reactor
        )
        observer = service.server.factory.observer
        assert isinstance(observer, Observers)
        self.assertEqual(
            [type(o).__name__ for o in observer.observers], ["MainLogAccessLog", "LatencyHistogram"]
        )

    def test_unopenableAccessLog(self) -> None:
        """
        An access log that cannot be opened ends the process with one line.
        """
        missing = os.path.join(os.path.abspath(self.mktemp()), "access.log")
        with self.assertRaises(SystemExit) as raised:
            makeService(options("--db", self.path, "--access-log", missing), self.reactor)
        self.assertEqual(
            raised.exception.code,
            f"avatard: --access-log {missing!r} cannot be opened: No such file or directory",
        )

    def test_startLineNamesTheSettings(self) -> None:
        """
        The start line names the limits, timeouts and cache in force.
        """
        service = makeService(
            options("--db", self.path, "--port", "tcp:0", "--max-connections", "50", "--cache-size", "0"),
            self.reactor,
        )
        service.privilegedStartService()
        with capturedLogs() as events:
            service.startService()
        self.assertEqual(
            events[-1]["details"],
            " (max-connections 50, max-per-ip none, max-line 1024, idle-timeout 60 s, "
            "query-timeout 3 s, no cache)",
        )
        with capturedLogs() as events:
            self.successResultOf(service.stopService())
        self.assertTrue(events[-1]["summary"].endswith(": 0 requests on 0 connections"))
