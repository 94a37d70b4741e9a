"""
The avatard benchmark: one command, C{python -m benchmarks.run}.

It builds its own SQLite databases (1 thousand, 100 thousand and 1 million
users), starts avatard (the real C{twistd -n avatard}) and the servers it is
compared with (L{benchmarks.servers}), and drives them with a load generator
written in C (C{benchmarks/loadgen.c}, compiled on the spot), one workload
and one server after another, round after round, so that every figure of a
row was measured side by side.  It prints a table (medians over the rounds;
each ratio is the median of the ratios of the rounds, every round's
measurements taken seconds apart) and writes every measurement as JSON.

With C{--postgres URL} it also loads 100 thousand users into a schema of
its own on that PostgreSQL server (dropped at the end) and measures avatard
against the original style there, on the same workloads, and two avatard
nodes sharing that database, driven at once; C{--postgres-only} measures
only that.

See docs/PERFORMANCE.md for what each row means and the figures of a run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatard.stores import parseDatabase
from tests.backends import connectPostgres, createSchema, dropSchema
from tests.daemon import clientsAtOnce, residentSize

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIZES = {"1k": 1_000, "100k": 100_000, "1M": 1_000_000}
FORNAMES = ("Yoen", "Estebán", "Mohamed", "Zoë", "Ana", "Jürgen", "Li", "Øystein")
NOT_FOUND = "ERR not-found no such login"

FILL_LIMIT = 600.0
"""
Seconds the load generator may take to ask a server to be filled for
every request of its file once, before the benchmark gives up.
"""


def login(n: int) -> str:
    return f"user{n:07d}"


def reply(n: int) -> str:
    return f"OK Mr '{FORNAMES[n % len(FORNAMES)]} Name{n}' is connected under '{login(n)}'"


def makeDatabase(path: Path, users: int) -> None:
    parseDatabase(str(path)).admin().init(())
    connection = sqlite3.connect(path)
    with connection:
        connection.executemany(
            "INSERT INTO users (login, name, forname) VALUES (?, ?, ?)",
            ((login(n), f"Name{n}", FORNAMES[n % len(FORNAMES)]) for n in range(users)),
        )
    connection.close()


def makePostgresDatabase(url: str, users: int) -> None:
    """
    Create the C{users} table at C{url} (a schema of the benchmark's own)
    with C{users} users, as L{makeDatabase} does on SQLite.
    """
    parseDatabase(url).admin().init(())
    with connectPostgres(url) as connection, connection.cursor() as cursor:
        with cursor.copy("COPY users (login, name, forname) FROM STDIN") as copy:
            for n in range(users):
                copy.write_row((login(n), f"Name{n}", FORNAMES[n % len(FORNAMES)]))
        cursor.execute("ANALYZE users")


def compileLoadgen(directory: Path) -> Path:
    """
    Compile the load generator (C{benchmarks/loadgen.c}) with C{$CC}
    (C{cc} by default).

    @return: the program, in C{directory}.
    """
    binary = directory / "loadgen"
    subprocess.run(
        [os.environ.get("CC", "cc"), "-O2", "-Wall", "-o", str(binary), str(HERE / "loadgen.c")], check=True
    )
    return binary


def writeScaleRequests(directory: Path, name: str, turns: int) -> list[Path]:
    """
    Write the requests of a scale row on the C{name} database (of
    C{SIZES}), other ones for each of C{turns} turns, as a daemon that
    keeps its cache sees them, rather than the same ones again.

    @return: the files, one per turn.
    """
    users = SIZES[name]
    paths = []
    for turn in range(turns):
        paths.append(directory / f"mixed-{name}-{turn}.txt")
        writeRequests(paths[-1], mixed(users, 200_000, seed=users + turn, first=turn * 200_000))
    return paths


def writeRequests(path: Path, lines: Iterator[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for request, expected in lines:
            f.write(f"{request}\t{expected}\n")


def mixed(users: int, count: int, seed: int, first: int = 0) -> Iterator[tuple[str, str]]:
    """
    Requests for random users, one in ten for a login that does not exist
    (C{nobody<n>}, C{n} counting from C{first}).
    """
    rng = random.Random(seed)
    for i in range(first, first + count):
        if rng.random() < 0.1:
            yield f"WHO nobody{i}", NOT_FOUND
        else:
            n = rng.randrange(users)
            yield f"WHO {login(n)}", reply(n)


def cold(users: int, seed: int, parts: int) -> list[Iterator[tuple[str, str]]]:
    """
    Every user once, in random order, cut into C{parts} parts: no request
    repeats a login, within a part or across parts.
    """
    order = list(range(users))
    random.Random(seed).shuffle(order)
    size = users // parts
    return [((f"WHO {login(n)}", reply(n)) for n in order[i * size : (i + 1) * size]) for i in range(parts)]


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    database: str
    command: list[str]
    port: int = field(default_factory=freePort)
    process: subprocess.Popen[bytes] | None = None

    def start(self, directory: Path) -> None:
        log = (directory / f"{self.name}-{self.database}.log").open("wb")
        self.process = subprocess.Popen(
            [arg.replace("{port}", str(self.port)) for arg in self.command],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    s.sendall(b"WHO nobody\n")
                    if s.recv(100).endswith(b"\r\n"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} on {self.database} did not start; see {log.name}")

    def cpuSeconds(self) -> float:
        """
        @return: the processor time the server has used so far, user and
            system, all threads, its running child processes (avatard's
            workers) included.
        """
        assert self.process is not None
        return processCPU(self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)


def processCPU(pid: int) -> float:
    """
    @return: the processor time process C{pid} and its running
        descendants have used so far, in seconds; 0 for a process gone.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(child) for child in f.read().split()]
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(processCPU(child) for child in children)


def avatard(
    database: str, path: Path | str, directory: Path, name: str = "avatard", options: tuple[str, ...] = ()
) -> Server:
    return Server(
        name,
        database,
        [
            *(str(Path(sys.executable).parent / "twistd"), "-n", "--pidfile="),
            *("-l", str(directory / f"avatard-{database}.twistd.log"), "avatard"),
            *("--db", str(path), "--port", "tcp:{port}:interface=127.0.0.1", *options),
        ],
    )


def other(kind: str, database: str, path: Path | str) -> Server:
    return Server(kind, database, [sys.executable, "-m", "benchmarks.servers", kind, str(path), "{port}"])


@dataclass
class Workload:
    name: str
    database: str
    requests: str
    servers: tuple[str, ...]
    arguments: tuple[str, ...]


WORKERS = "avatard --workers 2"
"""
The name of avatard run as two workers (C{--workers 2}), measured beside
one process (C{avatard}) on the same database.
"""

TWO_NODES = "avatard, 2 nodes"
"""
The name of a measurement of two avatard nodes at once: servers
C{avatard} and C{avatard-2} on one database, each driven by its own load
generator with the workload's arguments.
"""


def loadgen(
    binary: Path, port: int, requests: Path, arguments: tuple[str, ...], duration: float
) -> dict[str, Any]:
    command = [str(binary), "--port", str(port), "--requests", str(requests), *arguments]
    if "burst" not in arguments:
        command += ["--duration", str(duration)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 300, check=True)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def loadgenTogether(
    binary: Path, ports: list[int], requests: Path, arguments: tuple[str, ...], duration: float
) -> dict[str, Any]:
    """
    Run one load generator per port, at once.

    @return: their requests per second added up, the worse of their
        latency percentiles, and their errors added up.
    """
    command = [str(binary), "--requests", str(requests), *arguments, "--duration", str(duration)]
    processes = [
        subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.PIPE, text=True) for port in ports
    ]
    measured = []
    for process in processes:
        out, _ = process.communicate(timeout=300)
        if process.returncode != 0:
            raise RuntimeError(f"loadgen exited with status {process.returncode}")
        measured.append(json.loads(out))
    return {
        "rps": sum(m["rps"] for m in measured),
        "p50_us": max(m["p50_us"] for m in measured),
        "p99_us": max(m["p99_us"] for m in measured),
        "wrong": sum(m["wrong"] for m in measured),
        "closed": sum(m["closed"] for m in measured),
        "replies": sum(m["replies"] for m in measured),
        "nodes": measured,
    }


def idleConnectionCost(server: Server, connections: int) -> float:
    """
    Open C{connections} connections to C{server}, make sure each is served
    (one request), and return the growth of the server's resident memory
    per connection, in bytes.
    """
    assert server.process is not None
    before = residentSize(server.process.pid)
    with clientsAtOnce(server.port, connections, b"WHO nobody\n", timeout=120) as burst:
        answered = sum(1 for reply in burst.replies.values() if reply)
        if answered < connections:
            raise RuntimeError(f"only {answered} of {connections} connections were served")
        time.sleep(1)
        after = residentSize(server.process.pid)
    return (after - before) / connections


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        memory = int(f.readline().split()[1]) // 1024 // 1024
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


@contextmanager
def running(servers: list[Server], directory: Path) -> Iterator[None]:
    try:
        for server in servers:
            server.start(directory)
        yield
    finally:
        for server in servers:
            server.stop()


def pairedRatio(runs: list[dict[str, Any]], references: list[dict[str, Any]], key: str) -> float:
    """
    The median over rounds of C{key} in C{runs} over C{key} in
    C{references}, each round's measurements against each other: the two
    were taken seconds apart, while the machine's state drifts from one
    round to the next.
    """
    byRound = {m["round"]: m[key] for m in references}
    return float(statistics.median(m[key] / byRound[m["round"]] for m in runs if byRound.get(m["round"])))


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| workload | server | req/s | p50 ms | p99 ms | vs baseline | vs ceiling "
        "| µs CPU/reply | CPU vs ceiling | wrong |",
        "|---" * 10 + "|",
    ]
    byWorkload: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in results:
        byWorkload.setdefault(r["workload"], {}).setdefault(r["server"], []).append(r)
    for workload, servers in byWorkload.items():
        medians = {
            name: {
                key: statistics.median(m[key] for m in runs)
                for key in ("rps", "p50_us", "p99_us", "cpu_us_per_reply")
            }
            | {"wrong": sum(m["wrong"] + m["closed"] for m in runs)}
            for name, runs in servers.items()
        }
        for name, m in medians.items():
            ratios = []
            baseline = "baseline-pg" if "baseline-pg" in servers else "baseline"
            for reference in (baseline, "ceiling"):
                if reference in servers and reference != name:
                    ratios.append(f"{pairedRatio(servers[name], servers[reference], 'rps'):.2f}x")
                else:
                    ratios.append("")
            # The ceiling's processor time per reply over this server's: 0.8x
            # means this server spends 1.25 times what the ceiling does.
            efficiency = ""
            if "ceiling" in servers and name != "ceiling":
                efficiency = f"{1 / pairedRatio(servers[name], servers['ceiling'], 'cpu_us_per_reply'):.2f}x"
            rows.append(
                f"| {workload} | {name} | {m['rps']:,.0f} | {m['p50_us'] / 1000:.2f} | "
                f"{m['p99_us'] / 1000:.2f} | {ratios[0]} | {ratios[1]} | "
                f"{m['cpu_us_per_reply']:.1f} | {efficiency} | {m['wrong']} |"
            )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every measurement (default 5)")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measurement (default 2)")
    parser.add_argument("--json", default="benchmark.json", help="where to write every measurement")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections for the memory row")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (databases, logs)")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also measure on PostgreSQL, in a schema of its own at this server "
        "(e.g. postgresql://postgres@127.0.0.1:5432/test)",
    )
    parser.add_argument(
        "--postgres-only", action="store_true", help="with --postgres, measure only on PostgreSQL"
    )
    parser.add_argument(
        "--workers-only",
        action="store_true",
        help="measure only avatard against avatard --workers 2, pipelining 16 (100k users)",
    )
    options = parser.parse_args()
    if options.postgres_only and not options.postgres:
        parser.error("--postgres-only needs --postgres URL")

    directory = Path(tempfile.mkdtemp(prefix="avatard-bench-"))
    try:
        run(directory, options)
    finally:
        if options.keep:
            print(f"kept {directory}", file=sys.stderr)
        else:
            shutil.rmtree(directory)


def run(directory: Path, options: argparse.Namespace) -> None:
    binary = compileLoadgen(directory)
    print(f"machine: {machine()}", file=sys.stderr)
    schema = None
    if options.postgres:
        schema, url = createSchema(options.postgres)
    try:
        runWith(directory, options, binary, url if schema is not None else None)
    finally:
        if schema is not None:
            dropSchema(options.postgres, schema)


def postgresMeasurements(directory: Path, url: str, rounds: int) -> tuple[list[Server], list[Workload]]:
    """
    @return: the servers and workloads of the PostgreSQL measurements, on
        100k users at C{url}.
    """
    started = time.monotonic()
    makePostgresDatabase(url, SIZES["100k"])
    print(f"database pg100k: {SIZES['100k']:,} users in {time.monotonic() - started:.1f} s", file=sys.stderr)
    for turn, part in enumerate(cold(SIZES["100k"], seed=2, parts=rounds)):
        writeRequests(directory / f"cold-pg100k-{turn}.txt", part)
    servers = [
        avatard("pg100k", url, directory),
        avatard("pg100k", url, directory, name="avatard-2"),
        other("baseline-pg", "pg100k", url),
        # Its own daemon, whose cache only ever sees the cold requests.
        avatard("pg100k-cold", url, directory),
    ]
    pair = ("avatard", "baseline-pg")
    workloads = [
        Workload(
            "PostgreSQL: 50 connections, 1 request at a time (100k users)",
            "pg100k",
            "mixed-100k",
            pair,
            ("--conns", "50"),
        ),
        Workload(
            "PostgreSQL: 50 connections pipelining 16 (100k users)",
            "pg100k",
            "mixed-100k",
            pair,
            ("--conns", "50", "--depth", "16"),
        ),
        Workload(
            "PostgreSQL: one request per connection, 8 clients (100k users)",
            "pg100k",
            "mixed-100k",
            pair,
            ("--mode", "per-connection", "--conns", "8"),
        ),
        Workload(
            "PostgreSQL: single connection (100k users)", "pg100k", "mixed-100k", pair, ("--conns", "1")
        ),
        Workload(
            "PostgreSQL cold: every lookup a miss (100k users)",
            "pg100k-cold",
            "cold-pg100k-{round}",
            pair,
            ("--conns", "50"),
        ),
        Workload(
            "PostgreSQL: 50 connections to each of 2 nodes vs 1 node (100k users)",
            "pg100k",
            "mixed-100k",
            ("avatard", TWO_NODES),
            ("--conns", "50"),
        ),
    ]
    return servers, workloads


def runWith(directory: Path, options: argparse.Namespace, binary: Path, postgres: str | None) -> None:
    if options.postgres_only:
        assert postgres is not None
        writeRequests(directory / "mixed-100k.txt", mixed(SIZES["100k"], 200_000, seed=SIZES["100k"]))
        servers, workloads = postgresMeasurements(directory, postgres, options.rounds)
        measure(directory, options, binary, servers, workloads, idle=False)
        return
    if options.workers_only:
        path = directory / "users-100k.sqlite"
        makeDatabase(path, SIZES["100k"])
        writeRequests(directory / "mixed-100k.txt", mixed(SIZES["100k"], 200_000, seed=SIZES["100k"]))
        servers = [avatard("100k", path, directory), workersServer(path, directory)]
        measure(directory, options, binary, servers, [pipelined(("avatard", WORKERS))], idle=False)
        return
    paths = {}
    for name, users in SIZES.items():
        started = time.monotonic()
        paths[name] = directory / f"users-{name}.sqlite"
        makeDatabase(paths[name], users)
        if name == "100k":
            writeRequests(directory / f"mixed-{name}.txt", mixed(users, 200_000, seed=users))
        else:
            writeScaleRequests(directory, name, options.rounds)
        print(f"database {name}: {users:,} users in {time.monotonic() - started:.1f} s", file=sys.stderr)
    # One part per round, so that no round asks for a login an earlier one did.
    for turn, part in enumerate(cold(SIZES["1M"], seed=1, parts=options.rounds)):
        writeRequests(directory / f"cold-1M-{turn}.txt", part)
    # Every user of the 1M database once, to fill a cache sized for all of them.
    writeRequests(directory / "every-1M.txt", ((f"WHO {login(n)}", reply(n)) for n in range(SIZES["1M"])))
    writeRequests(directory / "trivial.txt", (("WHO x", "OK") for _ in range(1)))

    servers = [
        avatard("100k", paths["100k"], directory),
        other("baseline", "100k", paths["100k"]),
        other("ceiling", "100k", paths["100k"]),
        avatard("1k", paths["1k"], directory),
        other("ceiling", "1k", paths["1k"]),
        avatard("1M", paths["1M"], directory),
        # Its own daemon, whose cache only ever sees the cold requests.
        avatard("1M-cold", paths["1M"], directory),
        # A cache sized for every user, filled before the rounds.
        avatard("1M-sized", paths["1M"], directory, options=("--cache-size", str(SIZES["1M"]))),
        other("baseline", "1M", paths["1M"]),
        other("ceiling", "1M", paths["1M"]),
        other("trivial", "none", paths["1k"]),
        workersServer(paths["100k"], directory),
    ]
    three = ("avatard", "baseline", "ceiling")
    workloads = [
        Workload(
            "50 connections, 1 request at a time (100k users)", "100k", "mixed-100k", three, ("--conns", "50")
        ),
        pipelined((*three, WORKERS)),
        Workload(
            "one request per connection, 8 clients (100k users)",
            "100k",
            "mixed-100k",
            three,
            ("--mode", "per-connection", "--conns", "8"),
        ),
        Workload("single connection (100k users)", "100k", "mixed-100k", three, ("--conns", "1")),
        Workload(
            "burst of 2,000 clients (100k users)",
            "100k",
            "mixed-100k",
            three,
            ("--mode", "burst", "--conns", "2000"),
        ),
        Workload(
            "cold: every lookup a miss (1M users)",
            "1M-cold",
            "cold-1M-{round}",
            ("avatard", "baseline"),
            ("--conns", "50"),
        ),
        Workload(
            "scale: 50 connections on 1k users",
            "1k",
            "mixed-1k-{round}",
            ("avatard", "ceiling"),
            ("--conns", "50"),
        ),
        Workload(
            "scale: 50 connections on 1M users",
            "1M",
            "mixed-1M-{round}",
            ("avatard", "ceiling"),
            ("--conns", "50"),
        ),
        Workload(
            "scale: 50 connections on 1M users, --cache-size 1000000, every user asked once before",
            "1M-sized",
            "mixed-1M-{round}",
            ("avatard", "ceiling"),
            ("--conns", "50"),
        ),
        Workload("load generator check: trivial server", "none", "trivial", ("trivial",), ("--conns", "50")),
        Workload(
            "load generator check: trivial server, pipelining 16",
            "none",
            "trivial",
            ("trivial",),
            ("--conns", "50", "--depth", "16"),
        ),
    ]
    if postgres is not None:
        more, postgresWorkloads = postgresMeasurements(directory, postgres, options.rounds)
        servers += more
        workloads += postgresWorkloads
    measure(
        directory, options, binary, servers, workloads, idle=True, warm={("avatard", "1M-sized"): "every-1M"}
    )


def workersServer(path: Path, directory: Path) -> Server:
    """
    @return: avatard with two workers (L{WORKERS}) on the 100k database.
    """
    return avatard("100k", path, directory, name=WORKERS, options=("--workers", "2"))


def pipelined(servers: tuple[str, ...]) -> Workload:
    """
    @return: 50 connections pipelining 16 requests, on 100k users, for
        C{servers}.
    """
    return Workload(
        "50 connections pipelining 16 (100k users)",
        "100k",
        "mixed-100k",
        servers,
        ("--conns", "50", "--depth", "16"),
    )


def workersRatios(results: list[dict[str, Any]]) -> list[str]:
    """
    @return: for each workload that measured L{WORKERS} beside
        C{avatard}, a line with the medians of the per-round ratios of
        throughput and of CPU time per reply.
    """
    lines = []
    byWorkload: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in results:
        byWorkload.setdefault(r["workload"], {}).setdefault(r["server"], []).append(r)
    for workload, servers in byWorkload.items():
        if WORKERS in servers and "avatard" in servers:
            throughput = pairedRatio(servers[WORKERS], servers["avatard"], "rps")
            cpu = pairedRatio(servers[WORKERS], servers["avatard"], "cpu_us_per_reply")
            lines.append(
                f"{workload}: {WORKERS} over avatard: {throughput:.2f}x req/s, {cpu:.2f}x CPU per reply"
            )
    return lines


def measure(
    directory: Path,
    options: argparse.Namespace,
    binary: Path,
    servers: list[Server],
    workloads: list[Workload],
    idle: bool,
    warm: dict[tuple[str, str], str] | None = None,
) -> None:
    """
    @param warm: requests files to send, pipelined, to some servers before
        the rounds, by server.
    """
    find = {(s.name, s.database): s for s in servers}
    # Servers without a cache to keep cold or filled serve several rows.
    for alias, server in (
        (("baseline", "1M-cold"), ("baseline", "1M")),
        (("baseline-pg", "pg100k-cold"), ("baseline-pg", "pg100k")),
        (("ceiling", "1M-sized"), ("ceiling", "1M")),
    ):
        if server in find:
            find[alias] = find[server]
    results: list[dict[str, Any]] = []
    with running(servers, directory):
        for key, fill in (warm or {}).items():
            if key in find:
                path = directory / f"{fill}.txt"
                # Every request of the file once, however long that takes
                # the machine of the day (up to the time limit).
                filled = loadgen(
                    binary,
                    find[key].port,
                    path,
                    ("--conns", "50", "--depth", "16", "--warmup", "0", "--once"),
                    FILL_LIMIT,
                )
                with path.open("rb") as f:
                    lines = sum(1 for _ in f)
                if filled["replies"] != lines or filled["wrong"]:
                    raise RuntimeError(
                        f"filling {key[0]} on {key[1]}: {filled['replies']:,} of {lines:,} requests answered "
                        f"within {FILL_LIMIT:g} s, {filled['wrong']:,} wrong"
                    )
                print(
                    f"filled {key[0]} on {key[1]}: all {lines:,} requests in {filled['seconds']:.1f} s",
                    file=sys.stderr,
                )
        for turn in range(options.rounds):
            for workload in workloads:
                for name in workload.servers:
                    requests = directory / f"{workload.requests.format(round=turn)}.txt"
                    if name == TWO_NODES:
                        servers = [find[(n, workload.database)] for n in ("avatard", "avatard-2")]
                    else:
                        servers = [find[(name, workload.database)]]
                    cpu = sum(server.cpuSeconds() for server in servers)
                    if name == TWO_NODES:
                        measured = loadgenTogether(
                            binary, [s.port for s in servers], requests, workload.arguments, options.duration
                        )
                    else:
                        measured = loadgen(
                            binary, servers[0].port, requests, workload.arguments, options.duration
                        )
                    # Processor time per reply the server sent, warm-up included:
                    # what a reply costs, whatever else the machine was doing.
                    spent = sum(server.cpuSeconds() for server in servers) - cpu
                    cpuPerReply = spent / max(1, measured["replies"]) * 1e6
                    measured |= {
                        "workload": workload.name,
                        "server": name,
                        "round": turn,
                        "cpu_us_per_reply": cpuPerReply,
                    }
                    results.append(measured)
                    print(
                        f"round {turn + 1}: {workload.name}: {name}: {measured['rps']:,.0f} req/s, "
                        f"p99 {measured['p99_us'] / 1000:.2f} ms, "
                        f"{cpuPerReply:.1f} µs CPU/reply, wrong {measured['wrong']}",
                        file=sys.stderr,
                    )
        memory = (
            {name: idleConnectionCost(find[(name, "100k")], options.idle) for name in ("avatard", "ceiling")}
            if idle
            else {}
        )
    Path(options.json).write_text(
        json.dumps({"machine": machine(), "results": results, "idle": memory}, indent=1)
    )
    print(f"machine: {machine()}")
    print(table(results))
    for line in workersRatios(results):
        print(line)
    print()
    for name, cost in memory.items():
        print(f"idle connections ({options.idle:,}), {name}: {cost / 1024:.2f} KiB RSS each")


if __name__ == "__main__":
    main()
