"""
C{twistd avatard}: options and the service tree they describe.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.application.service import IService
from twisted.copyright import version as twistedVersion
from twisted.python import usage

from avatard import __version__
from avatard.counters import Counters
from avatard.interfaces import IChangeWatch, IDatabase, IReplyCache
from avatard.networks import LOOPBACK, NetworkError, Networks
from avatard.ops.stats import Statistics
from avatard.ops.wiring import observe, readiness
from avatard.protocol.connections import Connections
from avatard.protocol.factory import WhoFactory
from avatard.protocol.finger import FingerFactory, fingerLookup
from avatard.protocol.limits import Limits, defaultMaxConnections
from avatard.protocol.proxy import ProxyHeaders
from avatard.rates import Rate, RateError
from avatard.request.cache import DEFAULT_CACHE_SIZE, DEFAULT_CACHE_TTL, ReplyCache, WatchedReplyCache
from avatard.request.coalesce import CoalescingStore
from avatard.request.render import DEFAULT_TEMPLATE, TemplateError, rendererFor
from avatard.request.responder import Responder
from avatard.request.who import DEFAULT_QUERY_TIMEOUT
from avatard.service.descriptions import listenOn, tlsEndpoint, tlsInstalled
from avatard.service.endpoint import EndpointService
from avatard.service.tree import AvatardService, whereListening
from avatard.stores import DatabaseError, parseDatabase

if TYPE_CHECKING:
    from avatard.workers.role import WorkerRole

DEFAULT_PORT = "tcp:8787:interface=127.0.0.1"

_DEFAULTS = Limits()


class _number:
    """
    Reads an option's number: a positive one, or with C{zero} one of 0 or
    more, of C{kind}; anything else is refused naming the option.
    """

    # usage.Options adds a coercer's coerceDoc to the option's help.
    coerceDoc = ""

    def __init__(self, kind: type[int] | type[float], name: str, zero: bool = False) -> None:
        self.kind = kind
        self.name = name
        self.zero = zero

    def __call__(self, text: str) -> int | float:
        what = "a number of 0 or more" if self.zero else "a positive number"
        try:
            value = self.kind(text)
        except ValueError:
            raise ValueError(f"{self.name} must be {what}, not {text!r}") from None
        if value < 0 or (value == 0 and not self.zero):
            raise ValueError(f"{self.name} must be {what}, not {text!r}")
        return value


def _helpText(method: Callable[[Any, str], None]) -> Callable[[Any, str], None]:
    """
    Make an C{opt_} method's docstring, which C{--help} prints, one
    paragraph: L{usage.Options} would keep its indentation inside lines.
    """
    method.__doc__ = " ".join((method.__doc__ or "").split())
    return method


def versionLine() -> str:
    """
    @return: what C{twistd avatard --version} prints: avatard's version,
        then Twisted's and Python's.
    """
    return f"avatard {__version__} (Twisted {twistedVersion}, Python {platform.python_version()})"


class Options(usage.Options):
    """
    Command-line options of C{twistd avatard}.
    """

    synopsis = "--db PATH [options]"
    longdesc = (
        "Answer 'WHO <login>' over TCP with one line describing that user, "
        "read from the users table of a database. Protocol: docs/PROTOCOL.md."
    )

    optParameters: ClassVar[list[list[Any]]] = [
        [
            "db",
            "d",
            None,
            "The database to serve: a path to an SQLite file (or sqlite:PATH), "
            "or postgresql://user@host[:port]/dbname[?params] (the password "
            "from PGPASSWORD or ~/.pgpass), created beforehand with "
            "'avatard init DB'. Required.",
        ],
        [
            "max-line",
            None,
            _DEFAULTS.maxLine,
            "The longest request line accepted, in bytes without its line ending; "
            "a longer one is answered 'ERR too-long' and the connection closed.",
            _number(int, "--max-line"),
        ],
        [
            "idle-timeout",
            None,
            _DEFAULTS.idleTimeout,
            "Seconds a connection may send nothing, while owed no reply, before "
            "it is answered 'ERR timeout' and closed.",
            _number(float, "--idle-timeout"),
        ],
        [
            "max-connections",
            None,
            None,
            "Connections open at once; more get 'ERR busy' and are closed. "
            "Default: the open-file limit (raised to its hard limit at start) "
            "less a reserve of 64.",
            _number(int, "--max-connections"),
        ],
        [
            "max-per-ip",
            None,
            _DEFAULTS.maxPerAddress,
            "Connections open at once from one IP address; more get 'ERR busy'. "
            "0 (the default) means no limit: behind a load balancer or NAT every "
            "client shares one address.",
            _number(int, "--max-per-ip", zero=True),
        ],
        [
            "rate-limit",
            None,
            None,
            "A budget of requests for each client address, as N/SECONDS (100/1, 600/60): "
            "N requests per SECONDS, in bursts of up to N; a request past it is answered "
            "'ERR rate-limit' and the connection stays open. Every request counts but QUIT; "
            "a finger query counts. IPv6 clients are counted per /64; UNIX-socket clients "
            "have no budget. Off by default.",
        ],
        [
            "query-timeout",
            None,
            DEFAULT_QUERY_TIMEOUT,
            "Seconds a database lookup may take before its request is answered 'ERR unavailable'.",
            _number(float, "--query-timeout"),
        ],
        [
            "cache-size",
            None,
            DEFAULT_CACHE_SIZE,
            "Users found whose replies are kept in memory (a quarter as many again "
            "for logins not found), whatever commands and front-ends asked for them. "
            "0 disables the cache.",
            _number(int, "--cache-size", zero=True),
        ],
        [
            "cache-ttl",
            None,
            DEFAULT_CACHE_TTL,
            "For a database whose changes the daemon cannot watch, seconds a "
            "cached reply may be used. An SQLite database is watched: a commit "
            "shows in replies within about ten milliseconds. 0 disables the cache.",
            _number(float, "--cache-ttl", zero=True),
        ],
        [
            "template",
            None,
            DEFAULT_TEMPLATE,
            "The text of a WHO reply after 'OK ': the fields {login}, {name} and {forname} "
            "are replaced by the user's (a NULL column by nothing); {{ and }} are literal braces. "
            "No other field, conversion or format specification is allowed.",
        ],
        [
            "shutdown-timeout",
            None,
            5.0,
            "On shutdown, seconds to let connections answer what they have read before dropping them.",
            _number(float, "--shutdown-timeout"),
        ],
        [
            "access-log",
            None,
            None,
            "Write one line per request (time, client, command, result, latency, request) "
            "to this file; '-' writes them to the daemon's own log. Off by default. "
            "SIGHUP reopens it.",
        ],
        [
            "metrics",
            None,
            None,
            "Serve Prometheus metrics at /metrics on this endpoint, as in "
            "tcp:9787:interface=127.0.0.1. Off by default; needs avatard[metrics].",
        ],
        [
            "workers",
            None,
            1,
            "Serving processes: 1 (the default) serves in this process; more start "
            "that many worker processes, each with its own pool and cache, serving every "
            "--port and --finger; 0 starts one per CPU this process may run on. "
            "--max-connections and --max-per-ip are shared out between them.",
            _number(int, "--workers", zero=True),
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["port"] = []
        self["finger"] = []
        self["proxy-from"] = []
        self["allow"] = []
        self.arguments: list[str] = []

    def parseOptions(self, options: list[str] | None = None) -> None:
        """
        Parse C{options} (the command line's by default), and keep them in
        C{arguments}: workers are started with the same.
        """
        self.arguments = list(sys.argv[1:] if options is None else options)
        super().parseOptions(options)

    @_helpText
    def opt_port(self, description: str) -> None:
        """
        Where to listen, as a Twisted server endpoint description:
        tcp:PORT[:interface=ADDR][:backlog=N], tcp6:PORT:interface=\\:\\:1,
        unix:/run/avatard.sock, systemd:domain=INET:index=0 (or name=NAME),
        ssl:443:privateKey=key.pem:certKey=cert.pem (ssl: and tls: need
        avatard[tls]). The listen backlog is 4096 unless backlog= says
        otherwise. Give it several times to listen on each; every
        listener shares one cache, one set of limits and one count of
        connections. Default: tcp:8787:interface=127.0.0.1.
        """
        self["port"].append(description)

    opt_p = opt_port

    @_helpText
    def opt_finger(self, description: str) -> None:
        """
        Also answer finger queries (RFC 1288) on this endpoint, for example
        tcp:79:interface=127.0.0.1 or a socket systemd binds on port 79
        (systemd:domain=INET:name=finger). Give it several times to listen
        on each. Off by default.
        """
        self["finger"].append(description)

    @_helpText
    def opt_proxy_from(self, network: str) -> None:
        """
        Believe PROXY headers, on haproxy: endpoints of --port and --finger
        (as haproxy:tcp:8787:interface=127.0.0.1), only from this network
        (CIDR, IPv4 or IPv6): HAProxy's address. Connections to such a port
        from elsewhere are closed without a reply. Give it several times
        for several networks. Default: loopback (127.0.0.0/8 and ::1).
        """
        self["proxy-from"].append(network)

    @_helpText
    def opt_allow(self, network: str) -> None:
        """
        Admit connections to every --port and --finger only from this
        network, as 192.0.2.0/24, 2001:db8::/32 or one address; give it
        several times to admit several. Others get one line ('ERR denied'
        on the WHO protocol) and are closed. An IPv4 client on an IPv6
        listener is judged as the IPv4 address it is. UNIX-socket clients
        are always admitted; --metrics is not concerned. Default: every
        address.
        """
        self["allow"].append(network)

    def opt_version(self) -> None:
        """
        Print avatard's version, with Twisted's and Python's, and exit.
        """
        print(versionLine())
        sys.exit(0)

    def postOptions(self) -> None:
        if not self["port"]:
            self["port"] = [DEFAULT_PORT]
        listeners = [("port", description) for description in self["port"]]
        listeners += [("finger", description) for description in self["finger"]]
        if self["metrics"] is not None:
            listeners.append(("metrics", self["metrics"]))
        for option, description in listeners:
            kind = tlsEndpoint(description)
            if kind is not None and not tlsInstalled():
                raise usage.UsageError(
                    f"--{option} {kind}:... needs Twisted's TLS support (pyOpenSSL): "
                    "pip install 'avatard[tls]'"
                )
        if self["metrics"] is not None:
            try:
                import prometheus_client  # noqa: F401
            except ImportError:
                raise usage.UsageError(
                    "--metrics needs the prometheus_client package: pip install 'avatard[metrics]'"
                ) from None
        try:
            self["proxy-senders"] = Networks.parse(self["proxy-from"]) if self["proxy-from"] else LOOPBACK
        except NetworkError as e:
            raise usage.UsageError(f"--proxy-from: {e}") from None
        if self["db"] is None:
            raise usage.UsageError(
                "--db is required: the path of the SQLite database, or the postgresql:// URL, to serve"
            )
        try:
            self["database"] = parseDatabase(self["db"])
        except DatabaseError as e:
            raise usage.UsageError(f"--db: {e}") from None
        try:
            self["allowed"] = Networks.parse(self["allow"]) if self["allow"] else None
        except NetworkError as e:
            raise usage.UsageError(f"--allow: {e}") from None
        try:
            self["rate"] = None if self["rate-limit"] is None else Rate.parse(self["rate-limit"])
        except RateError as e:
            raise usage.UsageError(f"--rate-limit: {e}") from None
        try:
            self["renderer"] = rendererFor(self["template"])
        except TemplateError as e:
            raise usage.UsageError(f"--template: {e}") from None
        if self["workers"] == 0:
            self["workers"] = len(os.sched_getaffinity(0))


def describeSettings(limits: Limits, queryTimeout: float, cache: str) -> str:
    """
    @param cache: how the reply cache keeps replies, as L{describeCache} says.
    @return: the settings the start line names: limits, timeouts, cache.
    """
    clients = ""
    if limits.allow is not None:
        clients += f"allow {' '.join(str(network) for network in limits.allow.networks)}, "
    if limits.rate is not None:
        clients += f"rate-limit {limits.rate}, "
    return (
        f"{clients}max-connections {limits.maxConnections}, max-per-ip {limits.maxPerAddress or 'none'}, "
        f"max-line {limits.maxLine}, idle-timeout {limits.idleTimeout:g} s, "
        f"query-timeout {queryTimeout:g} s, {cache}"
    )


def describeCache(cache: IReplyCache | None) -> str:
    """
    @return: how C{cache} keeps replies, for the start line.
    """
    if isinstance(cache, WatchedReplyCache):
        return f"cache {cache.size} users until the database changes"
    if isinstance(cache, ReplyCache):
        return f"cache {cache.size} users for {cache.ttl:g} s"
    return "no cache"


def makeService(options: Options, reactor: Any = None) -> IService:
    """
    Build the daemon's service tree from C{options}: with C{--workers 1},
    the L{AvatardService} that serves (L{serviceTree}); with more, the
    group that supervises that many workers, each serving with the same
    tree (L{avatard.workers.group}).

    @param reactor: the reactor to run on; the global one by default.
    """
    if reactor is None:
        from twisted.internet import reactor
    if options["workers"] > 1:
        from avatard.workers.group import workerGroup

        return workerGroup(options, reactor)
    return serviceTree(options, reactor)


def serviceTree(options: Options, reactor: Any, worker: WorkerRole | None = None) -> AvatardService:
    """
    Build the tree that serves, from C{options}: a single process's, or
    worker C{worker}'s.

    Checks the database first, through its backend (L{IDatabase.check}):
    a missing file, a file that is not SQLite or one without a C{users}
    table ends the process with one line naming the problem (and creates
    nothing).  A PostgreSQL server that answers without a usable C{users}
    table does too; one that cannot be reached does not: the daemon starts,
    answers C{ERR unavailable}, and reads from it once it is up.  A worker
    does not: the twistd process checked it before starting the group.

    A worker adopts the sockets the twistd process bound (through the same
    endpoint descriptions), enforces its share of the limits, tells the
    twistd process when it is ready, keeps its metrics for it to gather,
    and names itself in C{STATS}.
    """
    database: IDatabase = options["database"]
    queryTimeout = options["query-timeout"]
    if worker is None:
        checkDatabase(database, queryTimeout)
    limits = limitsOf(options)
    if worker is not None:
        limits = worker.share(limits, options["max-connections"] is not None)
    counters = Counters()
    proxyHeaders = ProxyHeaders(reactor, counters, limits.idleTimeout, options["proxy-senders"])
    listeners = [("--port", description, True) for description in options["port"]]
    listeners += [("--finger", description, False) for description in options["finger"]]
    listening = [
        listenOn(
            reactor if worker is None else worker.reactorFor(reactor, number),
            option,
            description,
            after,
            proxyHeaders,
        )
        for number, (option, description, after) in enumerate(listeners)
    ]
    endpoints = list(zip(listening, options["port"], strict=False))
    fingerEndpoints = list(zip(listening[len(options["port"]) :], options["finger"], strict=True))
    storage = database.open(reactor, queryTimeout)
    store = CoalescingStore(storage.store)
    cache = replyCache(options, reactor, storage.watch, counters)
    statistics = Statistics(
        reactor,
        counters,
        None if cache is None else cache.__len__,
        storage.poolState,
        worker=None if worker is None else worker.index,
    )
    renderer = options["renderer"]
    responder = Responder(store, renderer, reactor, queryTimeout, cache, counters, statistics.line)
    metrics = options["metrics"]
    observer, helpers = observe(
        reactor,
        statistics,
        options["access-log"],
        None if metrics is None or worker is not None else (listenOn(reactor, "--metrics", metrics), metrics),
        backend=database.backend.name,
        exportMetrics=worker.exportMetrics if worker is not None and metrics is not None else None,
    )
    connections = Connections(reactor, limits, counters)
    factory = WhoFactory(responder, reactor, observer=observer, connections=connections)
    servers: list[EndpointService[Any]] = [
        EndpointService(endpoint, factory, description) for endpoint, description in endpoints
    ]
    if fingerEndpoints:
        finger = FingerFactory(fingerLookup(responder.whoPath, renderer), reactor, connections, observer)
        servers += [
            EndpointService(endpoint, finger, description, label="finger ")
            for endpoint, description in fingerEndpoints
        ]
    return AvatardService(
        storage.service,
        servers,
        connections,
        database.describe(),
        options["shutdown-timeout"],
        details=describeSettings(limits, queryTimeout, describeCache(cache)),
        summary=statistics.summary,
        announcer=readiness(
            reactor,
            store,
            queryTimeout,
            statistics,
            lambda: whereListening(servers),
            notifier=None if worker is None else worker.notifier(),
        ),
        helpers=helpers,
    )


def checkDatabase(database: IDatabase, queryTimeout: float) -> None:
    """
    Check C{database} before serving it (L{IDatabase.check}).

    @raise SystemExit: with one line naming the problem.
    """
    try:
        database.check(queryTimeout)
    except DatabaseError as e:
        raise SystemExit(f"avatard: {e}") from None


def limitsOf(options: Options) -> Limits:
    """
    @return: the limits C{options} set for connections.
    """
    maxConnections = options["max-connections"]
    return Limits(
        maxLine=options["max-line"],
        idleTimeout=options["idle-timeout"],
        maxConnections=defaultMaxConnections() if maxConnections is None else maxConnections,
        maxPerAddress=options["max-per-ip"],
        allow=options["allowed"],
        rate=options["rate"],
    )


def replyCache(
    options: Options, reactor: Any, watch: IChangeWatch | None, counters: Counters
) -> IReplyCache | None:
    """
    @return: the reply cache C{options} ask for: replies kept until the
        data changes, for a database that tells (C{watch}); otherwise for
        C{--cache-ttl} seconds; none when the size or TTL is 0.
    """
    if options["cache-size"] <= 0 or options["cache-ttl"] <= 0:
        return None
    if watch is not None:
        return WatchedReplyCache(reactor, watch, options["cache-size"], counters)
    return ReplyCache(reactor, options["cache-size"], options["cache-ttl"], counters)
