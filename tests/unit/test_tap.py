"""
L{avatard.tap}: C{twistd avatard}'s options, and the daemon that
C{makeService} builds from them, started and stopped on a memory reactor.
"""

from __future__ import annotations

import io
import os
import platform
import signal
import sqlite3
import sys

from twisted.application.service import IService
from twisted.copyright import version as twistedVersion
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from avatard import __version__
from avatard.model import Avatar
from avatard.networks import LOOPBACK
from avatard.protocol.proxy import ProxyHeaderFactory
from avatard.request.cache import CHECK_INTERVAL
from avatard.request.render import ClassicRenderer
from avatard.service.descriptions import DEFAULT_BACKLOG
from avatard.service.tree import AvatardService
from avatard.stores.sqlite.store import READ_SPAN
from avatard.tap import DEFAULT_PORT, Options, makeService
from avatard.workers.group import GroupService
from tests.helpers import (
    TUTORIAL_REPLIES,
    Connection,
    ThreadedMemoryReactor,
    options,
    parseStats,
    poolThreads,
    tutorialDatabase,
)


class OptionsTests(SynchronousTestCase):
    """
    L{Options} validates before anything is built.
    """

    def parse(self, *argv: str) -> Options:
        o = Options()
        o.parseOptions(list(argv))
        return o

    def assertUsageError(self, fragment: str, *argv: str) -> None:
        with self.assertRaises(usage.UsageError) as raised:
            self.parse(*argv)
        self.assertIn(fragment, str(raised.exception))

    def test_defaults(self) -> None:
        """
        Only C{--db} is needed; the port defaults to loopback 8787.
        """
        o = self.parse("--db", "users.sqlite")
        self.assertEqual(o["database"].describe(), f"sqlite:{os.path.abspath('users.sqlite')}")
        self.assertEqual(o["port"], [DEFAULT_PORT])
        self.assertEqual(DEFAULT_PORT, "tcp:8787:interface=127.0.0.1")
        self.assertEqual(o["max-line"], 1024)
        self.assertEqual(o["idle-timeout"], 60.0)
        self.assertIsNone(o["max-connections"])
        self.assertEqual(o["max-per-ip"], 0)
        self.assertEqual(o["query-timeout"], 3.0)
        self.assertEqual(o["shutdown-timeout"], 5.0)
        self.assertEqual(o["cache-size"], 100_000)
        self.assertEqual(o["cache-ttl"], 1.0)

    def test_portIsRepeatable(self) -> None:
        """
        C{--port} (and C{-p}) may be given several times, each kept in
        order.
        """
        self.assertEqual(
            self.parse("--db", "u.sqlite", "--port", "tcp:1", "-p", "unix:/run/a.sock")["port"],
            ["tcp:1", "unix:/run/a.sock"],
        )

    def test_fingerIsOffByDefaultAndRepeatable(self) -> None:
        """
        No finger endpoint unless asked; C{--finger} may be given several
        times.
        """
        self.assertEqual(self.parse("--db", "u.sqlite")["finger"], [])
        self.assertEqual(
            self.parse("--db", "u.sqlite", "--finger", "tcp:79", "--finger", "tcp6:79")["finger"],
            ["tcp:79", "tcp6:79"],
        )

    def test_proxyFrom(self) -> None:
        """
        PROXY headers are believed from loopback unless C{--proxy-from}
        says otherwise; it may be given several times, IPv4 and IPv6.
        """
        self.assertIs(self.parse("--db", "u.sqlite")["proxy-senders"], LOOPBACK)
        senders = self.parse("--db", "u.sqlite", "--proxy-from", "10.0.0.0/8", "--proxy-from", "fd00::/8")[
            "proxy-senders"
        ]
        self.assertEqual(str(senders), "10.0.0.0/8, fd00::/8")
        self.assertIn("10.1.2.3", senders)
        self.assertNotIn("127.0.0.1", senders)

    def test_malformedProxyFrom(self) -> None:
        """
        A C{--proxy-from} that is not a network refuses the start, in one
        line naming it.
        """
        for network, message in (
            (
                "10.0.0.1/8",
                "--proxy-from: '10.0.0.1/8' has bits set past its prefix: did you mean 10.0.0.0/8?",
            ),
            ("haproxy", "--proxy-from: 'haproxy' is not an IP network (as 192.0.2.0/24 or 2001:db8::/32)"),
        ):
            with self.assertRaises(usage.UsageError) as raised:
                self.parse("--db", "u.sqlite", "--proxy-from", network)
            self.assertEqual(str(raised.exception), message)

    def test_helpNamesTheDefaultBacklog(self) -> None:
        """
        C{--help} says which listen backlog C{--port} gets by default.
        """
        self.assertIn(f"The listen backlog is {DEFAULT_BACKLOG} unless", " ".join(str(Options()).split()))

    def test_dbIsRequired(self) -> None:
        """
        Without C{--db} there is nothing to serve.
        """
        self.assertUsageError("--db is required", "--port", "tcp:1")

    def test_unsupportedDatabaseURL(self) -> None:
        """
        A C{--db} that names no usable database is refused by name.
        """
        self.assertUsageError("--db: unsupported database URL scheme 'mysql'", "--db", "mysql://h/d")

    def test_numbersMustBePositive(self) -> None:
        """
        C{--max-line} and C{--shutdown-timeout} take positive numbers.
        """
        self.assertUsageError("--max-line must be a positive number, not '0'", "--db", "x", "--max-line", "0")
        self.assertUsageError(
            "--max-line must be a positive number, not 'big'", "--db", "x", "--max-line", "big"
        )
        self.assertUsageError(
            "--shutdown-timeout must be a positive number", "--db", "x", "--shutdown-timeout", "-1"
        )
        self.assertEqual(self.parse("--db", "x", "--shutdown-timeout", "0.5")["shutdown-timeout"], 0.5)
        self.assertUsageError("--max-per-ip must be a number of 0 or more", "--db", "x", "--max-per-ip", "-2")
        self.assertEqual(self.parse("--db", "x", "--max-per-ip", "0")["max-per-ip"], 0)
        self.assertUsageError(
            "--max-connections must be a positive number", "--db", "x", "--max-connections", "0"
        )
        self.assertUsageError("--idle-timeout must be a positive number", "--db", "x", "--idle-timeout", "0")
        self.assertUsageError(
            "--query-timeout must be a positive number", "--db", "x", "--query-timeout", "x"
        )
        self.assertUsageError("--cache-size must be a number of 0 or more", "--db", "x", "--cache-size", "-1")
        self.assertUsageError("--cache-ttl must be a number of 0 or more", "--db", "x", "--cache-ttl", "soon")
        self.assertEqual(self.parse("--db", "x", "--cache-ttl", "0")["cache-ttl"], 0.0)

    def test_workers(self) -> None:
        """
        C{--workers} is 1 unless given; 0 is one per CPU this process may
        run on; anything but a number of 0 or more is refused naming it.
        The arguments are kept, for the workers.
        """
        self.assertEqual(self.parse("--db", "x")["workers"], 1)
        self.assertEqual(self.parse("--db", "x", "--workers", "3")["workers"], 3)
        self.assertEqual(self.parse("--db", "x", "--workers", "0")["workers"], len(os.sched_getaffinity(0)))
        self.assertUsageError(
            "--workers must be a number of 0 or more, not '-1'", "--db", "x", "--workers", "-1"
        )
        self.assertUsageError(
            "--workers must be a number of 0 or more, not 'two'", "--db", "x", "--workers", "two"
        )
        self.assertEqual(self.parse("--db", "x", "--workers", "2").arguments, ["--db", "x", "--workers", "2"])

    def test_allowIsRepeatableAndEveryoneByDefault(self) -> None:
        """
        C{--allow} adds one network each time; without it, every address
        is admitted.
        """
        self.assertIsNone(self.parse("--db", "x")["allowed"])
        allowed = self.parse("--db", "x", "--allow", "192.0.2.0/24", "--allow", "2001:db8::1")["allowed"]
        self.assertEqual(str(allowed), "192.0.2.0/24, 2001:db8::1/128")

    def test_malformedAllowIsRefusedNamingIt(self) -> None:
        """
        A network that cannot be read refuses the start with one line
        naming it.
        """
        for text in ("10.0.0.0/33", "bogus", "10.1.2.3/8"):
            with self.assertRaises(usage.UsageError) as raised:
                self.parse("--db", "x", "--allow", "192.0.2.0/24", "--allow", text)
            message = str(raised.exception)
            self.assertTrue(message.startswith(f"--allow: {text!r} "), message)
            self.assertNotIn("\n", message)

    def test_rateLimit(self) -> None:
        """
        C{--rate-limit} is off by default, and reads C{N/SECONDS}; anything
        else refuses the start with one line naming it.
        """
        self.assertIsNone(self.parse("--db", "x")["rate"])
        rate = self.parse("--db", "x", "--rate-limit", "600/60")["rate"]
        self.assertEqual((rate.requests, rate.seconds), (600, 60.0))
        for text in ("600", "0/1", "a/b", "10/0"):
            with self.assertRaises(usage.UsageError) as raised:
                self.parse("--db", "x", "--rate-limit", text)
            message = str(raised.exception)
            self.assertTrue(message.startswith(f"--rate-limit: {text!r} "), message)
            self.assertNotIn("\n", message)

    def test_versionNamesAvatard(self) -> None:
        """
        C{--version} prints avatard's version, then Twisted's and Python's,
        and exits 0, before any other option is checked.
        """
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        with self.assertRaises(SystemExit) as raised:
            self.parse("--version")
        self.assertEqual(raised.exception.code, 0)
        self.assertEqual(
            out.getvalue(),
            f"avatard {__version__} (Twisted {twistedVersion}, Python {platform.python_version()})\n",
        )

    def test_helpDocumentsEveryOption(self) -> None:
        """
        C{--help} mentions every option.
        """
        text = str(Options())
        for option in (
            "--db",
            "--port",
            "--max-line",
            "--idle-timeout",
            "--max-connections",
            "--max-per-ip",
            "--query-timeout",
            "--shutdown-timeout",
            "--cache-size",
            "--cache-ttl",
            "--access-log",
            "--metrics",
            "--template",
        ):
            self.assertIn(option, text)

    def test_defaultTemplateIsTheTutorialsSentence(self) -> None:
        """
        Without C{--template}, C{WHO} renders the tutorial's sentence, with
        the renderer made for it.
        """
        o = self.parse("--db", "x")
        self.assertEqual(o["template"], "Mr '{forname} {name}' is connected under '{login}'")
        self.assertIsInstance(o["renderer"], ClassicRenderer)
        self.assertIsInstance(
            self.parse("--db", "x", "--template", o["template"])["renderer"], ClassicRenderer
        )

    def test_templateMakesTheRenderer(self) -> None:
        """
        C{--template} makes a renderer of its text.
        """
        renderer = self.parse("--db", "x", "--template", "{login}: {forname} {{{name}}}")["renderer"]
        self.assertEqual(renderer.render(Avatar("yoen", "Van der Veld", "Yoen")), "yoen: Yoen {Van der Veld}")

    def test_unusableTemplatesAreRefusedNamingTheProblem(self) -> None:
        """
        A template that is malformed, empty, holds a control character, or
        has a field that is not one of the three bare fields, is refused
        with one line naming the problem.
        """
        for template, problem in (
            ("{name", "--template: malformed template (expected '}' before end of string)"),
            ("a } b", "--template: malformed template (Single '}' encountered in format string)"),
            ("{}", "--template: {}: positional fields are not allowed"),
            ("{0}", "--template: {0}: positional fields are not allowed"),
            ("{email}", "--template: {email}: unknown field; the fields are {login}, {name} and {forname}"),
            ("{name!r}", "--template: {name!r}: conversions are not allowed; write {name}"),
            ("{name:>20}", "--template: {name:>20}: format specifications are not allowed; write {name}"),
            (
                "{login.__class__}",
                "--template: {login.__class__}: attribute and index access are not allowed",
            ),
            ("{name[0]}", "--template: {name[0]}: attribute and index access are not allowed"),
            ("", "--template: the template is empty"),
            ("a\x1b[2Jb", "--template: the template holds a control or format character: a\\x1b[2Jb"),
        ):
            with self.assertRaises(usage.UsageError) as raised:
                self.parse("--db", "x", "--template", template)
            message = str(raised.exception)
            self.assertTrue(message.startswith(problem), message)
            self.assertNotIn("\n", message)


class TLSExtraTests(SynchronousTestCase):
    """
    A TLS endpoint without Twisted's TLS support installed is refused with
    one line saying what to install.
    """

    def withoutPyOpenSSL(self) -> None:
        # None in sys.modules makes the import fail as if not installed.
        installed = sys.modules.get("OpenSSL")
        sys.modules["OpenSSL"] = None  # type: ignore[assignment]
        if installed is None:
            self.addCleanup(sys.modules.pop, "OpenSSL", None)
        else:
            self.addCleanup(sys.modules.__setitem__, "OpenSSL", installed)

    def parse(self, *argv: str) -> Options:
        options = Options()
        options.parseOptions(["--db", "users.sqlite", *argv])
        return options

    def test_tlsEndpointsSayWhatToInstall(self) -> None:
        """
        Without pyOpenSSL, C{ssl:} and C{tls:} endpoints, alone or inside
        C{haproxy:}, given to C{--port} or C{--metrics}, are refused naming
        the C{tls} extra.
        """
        self.withoutPyOpenSSL()
        for option, description, kind in (
            ("--port", "ssl:8788:privateKey=key.pem:certKey=cert.pem", "ssl"),
            ("--port", "tls:/etc/avatard/certificates:port=8788", "tls"),
            ("--port", "haproxy:ssl:8788:privateKey=key.pem", "ssl"),
            ("--port", "haproxy:tls:/etc/avatard/certificates", "tls"),
            ("--metrics", "ssl:9788:privateKey=key.pem", "ssl"),
        ):
            with self.assertRaises(usage.UsageError) as raised:
                self.parse(option, description)
            self.assertEqual(
                str(raised.exception),
                f"{option} {kind}:... needs Twisted's TLS support (pyOpenSSL): pip install 'avatard[tls]'",
            )

    def test_otherEndpointsNeedNoTLS(self) -> None:
        """
        Without pyOpenSSL, endpoints that use no TLS are accepted, even
        where C{ssl} is an argument rather than the endpoint's type.
        """
        self.withoutPyOpenSSL()
        for description in (
            "tcp:8787:interface=127.0.0.1",
            "unix:ssl",
            "haproxy:tcp:8787",
            "systemd:domain=INET:index=0",
        ):
            self.assertEqual(self.parse("--port", description)["port"], [description])

    def test_tlsEndpointsWithPyOpenSSL(self) -> None:
        """
        With pyOpenSSL installed, a TLS endpoint passes the options' checks.
        """
        self.assertEqual(
            self.parse("--port", "ssl:8788:privateKey=k.pem")["port"], ["ssl:8788:privateKey=k.pem"]
        )


def rename(reactor: ThreadedMemoryReactor, path: str, login: str, name: str) -> None:
    """
    Change the name of C{login} in the SQLite file at C{path}, as another
    process would, once the daemon's reads in the reactor thread (on
    C{reactor}) have ended their read transaction.
    """
    reactor.advance(READ_SPAN)
    connection = sqlite3.connect(path)
    connection.execute("UPDATE users SET name = ? WHERE login = ?", (name, login))
    connection.commit()
    connection.close()


class MakeServiceTests(SynchronousTestCase):
    """
    What the daemon L{makeService} builds does, on a memory reactor: it
    starts nothing itself, listens where it is told, and answers from the
    database.
    """

    def setUp(self) -> None:
        self.path = tutorialDatabase(os.path.abspath(self.mktemp()))
        self.reactor = ThreadedMemoryReactor()

    def listening(self, *argv: str) -> Connection:
        """
        Build the daemon on C{self.path} with C{argv}, let it listen (it does
        not start its pool: that is C{startService}'s), and connect a client
        to its port.
        """
        service = makeService(options("--db", self.path, *argv), self.reactor)
        service.privilegedStartService()
        client = Connection(self.reactor.listened())

        def stop() -> None:
            client.lose()
            with capturedLogs():
                self.successResultOf(service.stopService())

        self.addCleanup(stop)
        return client

    def test_nothingRunsUntilStarted(self) -> None:
        """
        L{makeService} returns a service for twistd to start, and starts
        nothing itself: it listens nowhere, runs no pool thread, and has
        scheduled nothing.
        """
        service = makeService(options("--db", self.path), self.reactor)
        self.assertTrue(IService.providedBy(service))
        self.assertFalse(service.running)
        self.assertEqual((self.reactor.tcpServers, self.reactor.unixServers), ([], []))
        self.assertEqual(poolThreads(), [])
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_oneWorkerIsASingleProcess(self) -> None:
        """
        With C{--workers 1}, the tree is the daemon's own: no supervisor.
        """
        service = makeService(options("--db", self.path, "--workers", "1"), self.reactor)
        self.assertIsInstance(service, AvatardService)

    def test_workersAreSupervised(self) -> None:
        """
        With C{--workers 2}, the tree is a group with a supervisor of two
        workers, and binds and spawns nothing until started.
        """
        service = makeService(options("--db", self.path, "--workers", "2"), self.reactor)
        self.assertIsInstance(service, GroupService)
        assert isinstance(service, GroupService)
        self.assertEqual(service.supervisor.count, 2)
        self.assertIs(service.getServiceNamed("workers"), service.supervisor)
        self.assertEqual(service.sockets, [])
        self.assertEqual(self.reactor.tcpServers, [])
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_workersCheckTheDatabaseOnce(self) -> None:
        """
        A group whose database cannot be served ends with one line, as a
        single process does.
        """
        missing = os.path.abspath(self.mktemp())
        with self.assertRaises(SystemExit) as raised:
            makeService(options("--db", missing, "--workers", "2"), self.reactor)
        self.assertIn("does not exist", str(raised.exception))
        self.assertFalse(os.path.exists(missing))

    def test_clientsAreAnsweredFromTheDatabase(self) -> None:
        """
        A client of the daemon's port is answered from the database, each
        user as the tutorial rendered it; an SQLite file is read in the
        reactor thread (here, before the pool has even started).
        """
        client = self.listening()
        client.send(b"WHO yoen\nWHO esteban\nWHO nobody\n")
        self.assertEqual(
            client.received(),
            TUTORIAL_REPLIES["yoen"] + TUTORIAL_REPLIES["esteban"] + b"ERR not-found no such login\r\n",
        )
        self.assertEqual(poolThreads(), [])

    def test_templateIsWhatWhoAnswers(self) -> None:
        """
        C{--template} is the text of C{WHO} replies, made terminal-safe;
        C{JSON} is not changed by it.
        """
        client = self.listening("--template", "{login} <{forname} {name}>")
        client.send(b"WHO yoen\nJSON yoen\nWHO nobody\n")
        self.assertEqual(
            client.received(),
            b"OK yoen <Yoen Van der Veld>\r\n"
            b'OK {"login":"yoen","name":"Van der Veld","forname":"Yoen"}\r\n'
            b"ERR not-found no such login\r\n",
        )

    def test_limitsAreTheOptions(self) -> None:
        """
        The line limit and the idle timeout are those the options give; the
        idle timeout runs on the reactor's clock.
        """
        client = self.listening("--max-line", "300", "--idle-timeout", "5")
        client.send(b"PING" + b" " * 296 + b"\n")
        self.assertEqual(client.received(), b"OK pong\r\n")
        self.reactor.advance(5)
        self.assertEqual(client.received(), b"ERR timeout idle for too long, closing\r\n")
        other = Connection(self.reactor.listened())
        other.send(b"PING" + b" " * 297 + b"\n")
        self.assertEqual(other.received(), b"ERR too-long request line too long, closing\r\n")
        other.lose()

    def test_allowAndRateLimitAreTheOptions(self) -> None:
        """
        C{--allow} and C{--rate-limit} reach the connections: a client
        inside the list is served within its budget, one outside is denied.
        """
        client = self.listening("--allow", "192.0.2.0/24", "--rate-limit", "1/60")
        client.send(b"PING\nPING\n")
        self.assertEqual(client.received(), b"OK pong\r\nERR rate-limit too many requests, retry later\r\n")
        with capturedLogs():
            denied = self.reactor.listened().buildProtocol(IPv4Address("TCP", "198.51.100.1", 1))
        transport = StringTransport()
        denied.makeConnection(transport)
        self.assertEqual(transport.value(), b"ERR denied not allowed from this address\r\n")

    def test_repliesAreKeptUntilTheDatabaseChanges(self) -> None:
        """
        On an SQLite file, which tells when it changes, a reply is used
        again past the cache TTL while nothing changes, and a change shows
        in replies within L{CHECK_INTERVAL}.
        """
        client = self.listening("--cache-ttl", "1")
        client.send(b"WHO yoen\n")
        self.assertEqual(client.received(), TUTORIAL_REPLIES["yoen"])
        self.reactor.advance(10)
        client.send(b"WHO yoen\nSTATS\n")
        reply, stats = client.received().split(b"\r\n")[:2]
        self.assertEqual(reply + b"\r\n", TUTORIAL_REPLIES["yoen"])
        self.assertEqual(parseStats(stats + b"\r\n")["cache.hits"], 1)
        rename(self.reactor, self.path, "yoen", "Veld")
        self.reactor.advance(CHECK_INTERVAL)
        client.send(b"WHO yoen\n")
        self.assertEqual(client.received(), b"OK Mr 'Yoen Veld' is connected under 'yoen'\r\n")

    def test_zeroCacheSizeOrTTLTurnsTheCacheOff(self) -> None:
        """
        C{--cache-size 0} or C{--cache-ttl 0}: every request is a lookup, so
        a change shows in the very next reply.
        """
        for option in ("--cache-size", "--cache-ttl"):
            path = self.path = tutorialDatabase(os.path.abspath(self.mktemp()))
            client = self.listening(option, "0")
            client.send(b"WHO yoen\n")
            self.assertEqual(client.received(), TUTORIAL_REPLIES["yoen"])
            rename(self.reactor, path, "yoen", "Veld")
            client.send(b"WHO yoen\nSTATS\n")
            reply, stats = client.received().split(b"\r\n")[:2]
            self.assertEqual(reply, b"OK Mr 'Yoen Veld' is connected under 'yoen'")
            self.assertEqual(parseStats(stats + b"\r\n")["cache.hits"], 0)

    def test_defaultPortIsLoopback8787(self) -> None:
        """
        By default the daemon listens on 127.0.0.1:8787 only, with a deep
        listen queue.
        """
        service = makeService(options("--db", self.path), self.reactor)
        service.privilegedStartService()
        self.addCleanup(service.stopService)
        [(port, _, backlog, interface)] = self.reactor.tcpServers
        self.assertEqual((port, interface, backlog), (8787, "127.0.0.1", 4096))

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

    def test_everyPortListensAndSharesOneConnectionLimit(self) -> None:
        """
        Each C{--port} listens; connections through any of them count in
        one total of C{--max-connections}, and in one set of counters.
        """
        service = makeService(
            options(
                "--db",
                self.path,
                "--port",
                "tcp:8787",
                "--port",
                "tcp:8788",
                "--port",
                "unix:/run/a.sock",
                "--max-connections",
                "2",
            ),
            self.reactor,
        )
        service.privilegedStartService()
        self.addCleanup(service.stopService)
        self.assertEqual([port for port, _, _, _ in self.reactor.tcpServers], [8787, 8788])
        self.assertEqual([path for path, *_ in self.reactor.unixServers], ["/run/a.sock"])
        first = Connection(self.reactor.listened(0))
        Connection(self.reactor.listened(1))
        unixFactory = self.reactor.unixServers[0][1]
        self.assertEqual(refusedReply(unixFactory), b"ERR busy too many connections, retry later\r\n")
        first.send(b"STATS\n")
        stats = parseStats(first.received())
        self.assertEqual((stats["connections.open"], stats["connections.refused"]), (2, 1))

    def test_fingerListensBesideThePortsWithinTheSameLimit(self) -> None:
        """
        Each C{--finger} listens beside the C{--port}s; its connections count
        in the same C{--max-connections}; the start line names it as
        C{finger ADDRESS}; an unusable one refuses the start naming it.
        """
        service = makeService(
            options("--db", self.path, "--port", "tcp:8787", "--finger", "tcp:79", "--max-connections", "1"),
            self.reactor,
        )
        service.privilegedStartService()
        self.addCleanup(service.stopService)
        self.assertEqual([port for port, _, _, _ in self.reactor.tcpServers], [8787, 79])
        finger = self.reactor.tcpServers[1][1]
        transport = StringTransport()
        protocol = finger.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
        assert protocol is not None
        protocol.makeConnection(transport)
        protocol.dataReceived(b"yoen\r\n")
        self.reactor.runUntil(lambda: bool(transport.value()))
        self.assertEqual(transport.value(), b"Mr 'Yoen Van der Veld' is connected under 'yoen'\r\n")
        self.assertEqual(
            refusedReply(self.reactor.listened(0)), b"ERR busy too many connections, retry later\r\n"
        )
        with capturedLogs() as events:
            service.startService()
        self.assertEqual(events[-1]["where"], "0.0.0.0:8787, finger 0.0.0.0:79")
        with self.assertRaises(SystemExit) as raised:
            makeService(options("--db", self.path, "--finger", "carrier-pigeon:79"), self.reactor)
        self.assertIn("--finger 'carrier-pigeon:79' cannot be used", str(raised.exception.code))

    def test_haproxyPortsReadPROXYHeaders(self) -> None:
        """
        A C{haproxy:} C{--port} or C{--finger} listens on the endpoint it
        wraps (with the default backlog) and reads a PROXY header on each
        connection, believed from C{--proxy-from} only, within
        C{--idle-timeout}, counted in the daemon's counters: the client it
        names is served, and others refused.
        """
        service = makeService(
            options(
                "--db",
                self.path,
                "--port",
                "haproxy:tcp:8787:interface=127.0.0.1",
                "--finger",
                "haproxy:tcp:79",
                "--proxy-from",
                "10.0.0.0/8",
                "--idle-timeout",
                "7",
                "--max-per-ip",
                "1",
            ),
            self.reactor,
        )
        service.privilegedStartService()
        self.addCleanup(service.stopService)
        self.assertEqual(
            [(port, backlog, interface) for port, _, backlog, interface in self.reactor.tcpServers],
            [(8787, DEFAULT_BACKLOG, "127.0.0.1"), (79, DEFAULT_BACKLOG, "")],
        )
        who, finger = (factory for _, factory, _, _ in self.reactor.tcpServers)
        assert isinstance(who, ProxyHeaderFactory)
        assert isinstance(finger, ProxyHeaderFactory)
        self.assertIs(who.headers, finger.headers)
        self.assertEqual((str(who.headers.senders), who.headers.timeout), ("10.0.0.0/8", 7.0))
        self.assertIsNone(who.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000)))
        haproxy = IPv4Address("TCP", "10.0.0.2", 5000)
        first = who.buildProtocol(haproxy)
        second = who.buildProtocol(haproxy)
        assert first is not None
        assert second is not None
        transports = [StringTransport(peerAddress=haproxy), StringTransport(peerAddress=haproxy)]
        for protocol, transport, client in zip(
            (first, second), transports, ("192.0.2.7", "192.0.2.8"), strict=True
        ):
            protocol.makeConnection(transport)
            protocol.dataReceived(f"PROXY TCP4 {client} 10.0.0.1 40000 8787\r\nSTATS\n".encode())
        stats = parseStats(transports[1].value())
        self.assertEqual(
            (stats["connections.open"], stats["connections.refused"], stats["connections.proxy-refused"]),
            (2, 0, 1),
        )

    def test_oneUnusablePortOfSeveralExitsWithOneLine(self) -> None:
        """
        One C{--port} of several that no endpoint parser accepts ends the
        process with a message naming that one.
        """
        with self.assertRaises(SystemExit) as raised:
            makeService(
                options("--db", self.path, "--port", "tcp:8787", "--port", "carrier-pigeon:42"), self.reactor
            )
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


def refusedReply(factory: IProtocolFactory) -> bytes:
    """
    @return: what a client connecting through C{factory} is sent at once.
    """
    transport = StringTransport()
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    assert protocol is not None
    protocol.makeConnection(transport)
    return bytes(transport.value())


class StartStopTests(SynchronousTestCase):
    """
    Starting and stopping the whole daemon for real (threads included), on
    a memory reactor.
    """

    def test_startThenStopLeavesNothingRunning(self) -> None:
        """
        Started, the daemon says where it serves what, runs its pool's
        thread, answers and handles SIGHUP; stopped, its port is closed, its
        pool's thread is gone and SIGHUP is handled as before.
        """
        previous = signal.getsignal(signal.SIGHUP)
        path = tutorialDatabase(os.path.abspath(self.mktemp()))
        reactor = ThreadedMemoryReactor()
        service = makeService(options("--db", path, "--port", "tcp:0"), reactor)
        service.privilegedStartService()
        with capturedLogs() as events:
            service.startService()
        self.assertEqual(events[-1]["where"], "0.0.0.0:0")
        self.assertEqual(events[-1]["database"], f"sqlite:{path}")
        self.assertEqual(len(poolThreads()), 1)
        self.assertNotEqual(signal.getsignal(signal.SIGHUP), previous)
        client = Connection(reactor.listened())
        client.send(b"WHO yoen\n")
        self.assertEqual(client.received(), TUTORIAL_REPLIES["yoen"])
        client.lose()
        with capturedLogs():
            self.successResultOf(service.stopService())
        self.assertFalse(service.running)
        self.assertEqual([port.listening for port in reactor.ports], [False])
        self.assertEqual(poolThreads(), [])
        self.assertEqual(signal.getsignal(signal.SIGHUP), previous)


class MetricsOptionTests(SynchronousTestCase):
    """
    C{--metrics}: refused with one line where it cannot work.
    """

    def setUp(self) -> None:
        self.path = tutorialDatabase(os.path.abspath(self.mktemp()))

    def test_withoutTheLibrary(self) -> None:
        """
        Without prometheus_client installed, C{--metrics} is refused with
        one line saying what to install.
        """
        # None in sys.modules makes the import fail as if not installed.
        installed = sys.modules["prometheus_client"]
        sys.modules["prometheus_client"] = None  # type: ignore[assignment]
        self.addCleanup(sys.modules.__setitem__, "prometheus_client", installed)
        with self.assertRaises(usage.UsageError) as raised:
            Options().parseOptions(["--db", self.path, "--metrics", "tcp:9787"])
        self.assertEqual(
            str(raised.exception),
            "--metrics needs the prometheus_client package: pip install 'avatard[metrics]'",
        )

    def test_unusableEndpoint(self) -> None:
        """
        A C{--metrics} no endpoint parser accepts ends the process with one
        line naming it.
        """
        options = Options()
        options.parseOptions(["--db", self.path, "--metrics", "carrier-pigeon:9"])
        with self.assertRaises(SystemExit) as raised:
            makeService(options, ThreadedMemoryReactor())
        self.assertIn("--metrics 'carrier-pigeon:9' cannot be used", str(raised.exception.code))


class StartLineTests(SynchronousTestCase):
    """
    The start line's settings, and the stop line's summary.
    """

    def setUp(self) -> None:
        self.path = tutorialDatabase(os.path.abspath(self.mktemp()))
        self.reactor = ThreadedMemoryReactor()

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

    def test_startLineNamesTheClientRules(self) -> None:
        """
        The start line names the allow-list and the budget, when set.
        """
        service = makeService(
            options(
                "--db",
                self.path,
                "--port",
                "tcp:0",
                "--max-connections",
                "50",
                "--allow",
                "192.0.2.0/24",
                "--allow",
                "::1",
                "--rate-limit",
                "100/1",
            ),
            self.reactor,
        )
        service.privilegedStartService()
        self.addCleanup(service.stopService)
        with capturedLogs() as events:
            service.startService()
        self.assertTrue(
            events[-1]["details"].startswith(
                " (allow 192.0.2.0/24 ::1/128, rate-limit 100/1 s, max-connections 50, "
            ),
            events[-1]["details"],
        )

    def test_startLineNamesEveryListener(self) -> None:
        """
        With several C{--port}s, the start line names where each listens,
        in order.
        """
        service = makeService(
            options("--db", self.path, "--port", "tcp:8787", "--port", "unix:/run/a.sock"), self.reactor
        )
        service.privilegedStartService()
        self.addCleanup(service.stopService)
        with capturedLogs() as events:
            service.startService()
        self.assertEqual(events[-1]["where"], "0.0.0.0:8787, unix:/run/a.sock")
