"""
The avatard benchmark: one command, C{python -m benchmarks.run}.

It builds its own SQLite databases (1 thousand, 100 thousand and 1 million
users), starts avatard (the real C{twistd -n avatard}) and the servers it is
compared with (L{benchmarks.servers}), and drives them with a load generator
written in C (C{benchmarks/loadgen.c}, compiled on the spot), one workload
after another: each server of a workload is warmed on it, then the servers
are measured in turn, round after round, so that every figure of a row was
measured side by side.  What each server spends per reply (processor time
of its whole tree of processes and threads, L{treeCPU}) is what the
targets are judged on.  It prints a table (medians over the rounds; each
ratio is the median of the ratios of the rounds, every round's
measurements taken seconds apart), a table of the targets (L{AIMS}), met
or not, and writes every measurement as JSON.  C{--daemon NAME=ARGUMENTS}
measures avatard started with more arguments beside avatard.

With C{--postgres URL} it also loads 100 thousand users into a schema of
its own on that PostgreSQL server (dropped at the end) and measures avatard
against the original style there, on the same workloads, and two avatard
nodes sharing that database, driven at once; C{--postgres-only} measures
only that.

See docs/PERFORMANCE.md for what each row means and the figures of a run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import shlex
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


ZIPF_EXPONENT = 1.0
"""
The exponent of the Zipf distribution of the scale rows' logins: the
login of rank M{r} is asked in proportion to M{1 / r^s}.
"""

ZIPF_FILL = 500_000
"""
Requests a scale row's daemon is sent once before anything is measured,
so that its cache is measured in its steady state, not while it fills.
"""


def zipf(users: int, count: int, seed: int, exponent: float = ZIPF_EXPONENT) -> Iterator[tuple[str, str]]:
    """
    C{count} requests for logins of C{users} users drawn from a Zipf
    distribution: the login of rank M{r} (from 1) asked in proportion to
    M{1 / r^exponent}.  The ranks are given to the users in an order
    shuffled once for all (the same for every C{seed}), so that popular
    logins are spread over the directory and the same users are popular in
    every file; C{seed} draws the requests.
    """
    order = list(range(users))
    random.Random(users).shuffle(order)
    cumulative = list(itertools.accumulate(1 / rank**exponent for rank in range(1, users + 1)))
    for n in random.Random(seed).choices(order, cum_weights=cumulative, k=count):
        yield f"WHO {login(n)}", reply(n)


def writeZipfRequests(directory: Path, name: str, rounds: int, first: int = ZIPF_FILL) -> Path:
    """
    Write the requests of a scale row on the C{name} database (of
    C{SIZES}), drawn by L{zipf}: other ones for each of C{rounds} rounds
    (C{zipf-<name>-<round>.txt}) and for the warm-up
    (C{zipf-<name>-warm.txt}), as a daemon that keeps its cache sees them,
    and C{first} (C{zipf-<name>-fill.txt}) to send before anything is
    measured.

    @return: the file of the requests to send first.
    """
    users = SIZES[name]
    for turn, label in enumerate(rounds_and_warm(rounds)):
        writeRequests(directory / f"zipf-{name}-{label}.txt", zipf(users, 200_000, seed=users + turn))
    path = directory / f"zipf-{name}-fill.txt"
    writeRequests(path, zipf(users, first, seed=users - 1))
    return path


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


def processTree(root: int) -> list[int]:
    """
    @return: C{root} and every process descending from it, as C{/proc}
        shows them now.
    """
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            # Gone meanwhile, or not readable: not the server's.
            continue
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def treeCPU(root: int) -> float:
    """
    The processor time used so far by C{root} and its descendants, in
    seconds, user and system: of every thread of every process (its time
    on a processor, in nanoseconds, from C{/proc/PID/task/TID/schedstat}:
    C{/proc/PID/stat} counts in hundredths of a second, 2% of what a
    pipelined round costs), and of the children each waited for once they
    ended (from C{/proc/PID/stat}), so that a server of several processes,
    restarted ones included, is counted whole.  A thread that ended while
    its process goes on is not counted: the servers measured keep theirs.
    """
    seconds = 0.0
    for pid in processTree(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        # cutime and cstime: fields 16 and 17 of proc(5).
        seconds += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                    seconds += int(f.read().split()[0]) / 1e9
            except (OSError, IndexError, ValueError):
                continue
    return seconds


@dataclass
class Server:
    name: str
    database: str
    command: list[str]
    port: int = field(default_factory=freePort)
    process: subprocess.Popen[bytes] | None = None
    tree: Path = ROOT

    def start(self, directory: Path) -> None:
        log = (directory / f"{self.name}-{self.database}.log").open("wb")
        self.process = subprocess.Popen(
            [arg.replace("{port}", str(self.port)) for arg in self.command],
            cwd=self.tree,
            env={**os.environ, "PYTHONPATH": str(self.tree)},
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
            system, of every thread of every process of its tree (L{treeCPU}).
        """
        assert self.process is not None
        return treeCPU(self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)


def avatard(
    database: str,
    path: Path | str,
    directory: Path,
    name: str = "avatard",
    options: tuple[str, ...] = (),
    tree: Path = ROOT,
) -> Server:
    """
    @return: the real C{twistd -n avatard} on C{path}, with C{options}
        added, its code that of the source tree C{tree}.
    """
    return Server(
        name,
        database,
        [
            *(str(Path(sys.executable).parent / "twistd"), "-n", "--pidfile="),
            *("-l", str(directory / f"{name}-{database}.twistd.log"), "avatard"),
            *("--db", str(path), "--port", "tcp:{port}:interface=127.0.0.1", *options),
        ],
        tree=tree,
    )


def other(kind: str, database: str, path: Path | str) -> Server:
    return Server(kind, database, [sys.executable, "-m", "benchmarks.servers", kind, str(path), "{port}"])


@dataclass(frozen=True)
class Contender:
    """
    One server of a workload: shown as C{label}, the server C{server} (its
    name and database), sent the requests of the file named C{requests}
    (in the working directory, without C{.txt}), where C{{round}} is the
    round's number, or C{warm} for the warm-up.
    """

    label: str
    server: tuple[str, str]
    requests: str


@dataclass
class Workload:
    """
    A row group of the table: its C{contenders} measured in turn, round
    after round, each sent the load generator's C{arguments}; ratios are
    taken against the contender labelled C{reference}.
    """

    name: str
    contenders: tuple[Contender, ...]
    arguments: tuple[str, ...]
    reference: str = "ceiling"


def alike(names: tuple[str, ...], database: str, requests: str) -> tuple[Contender, ...]:
    """
    @return: the servers named C{names} on C{database}, each labelled by
        its name and sent the same requests.
    """
    return tuple(Contender(name, (name, database), requests) for name in names)


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


def pairedRatio(runs: list[dict[str, Any]], references: list[dict[str, Any]], key: str) -> float | None:
    """
    The median over rounds of C{key} in C{runs} over C{key} in
    C{references}, each round's measurements against each other: the two
    were taken seconds apart, while the machine's state drifts from one
    round to the next.

    @return: the ratio, or L{None} when no round has both.
    """
    byRound = {m["round"]: m[key] for m in references}
    ratios = [m[key] / byRound[m["round"]] for m in runs if byRound.get(m["round"])]
    return float(statistics.median(ratios)) if ratios else None


def grouped(results: list[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """
    @return: C{results} by workload, then by server label, in the order
        they were measured.
    """
    byWorkload: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in results:
        byWorkload.setdefault(r["workload"], {}).setdefault(r["server"], []).append(r)
    return byWorkload


def ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def table(results: list[dict[str, Any]], references: dict[str, str]) -> str:
    """
    The table of C{results}: medians over the rounds, and each ratio the
    median of the rounds' own ratios, against the workload's reference
    (C{references}, by workload; the reference's own row has none) and,
    for throughput, against the baseline too.
    """
    rows = [
        "| workload | server | req/s | p50 ms | p99 ms | µs CPU/reply | CPU/reply vs reference "
        "| req/s vs reference | req/s vs baseline | wrong |",
        "|---" * 10 + "|",
    ]
    for workload, servers in grouped(results).items():
        reference = references.get(workload, "ceiling")
        baseline = "baseline-pg" if "baseline-pg" in servers else "baseline"
        for name, runs in servers.items():
            m = {
                key: statistics.median(r[key] for r in runs)
                for key in ("rps", "p50_us", "p99_us", "cpu_us_per_reply")
            }
            wrong = sum(r["wrong"] + r["closed"] for r in runs)
            cpu = rps = versusBaseline = None
            if reference in servers and name != reference:
                cpu = pairedRatio(runs, servers[reference], "cpu_us_per_reply")
                rps = pairedRatio(runs, servers[reference], "rps")
            if baseline in servers and name != baseline:
                versusBaseline = pairedRatio(runs, servers[baseline], "rps")
            label = workload if reference == "ceiling" else f"{workload} (reference: {reference})"
            rows.append(
                f"| {label} | {name} | {m['rps']:,.0f} | {m['p50_us'] / 1000:.2f} | "
                f"{m['p99_us'] / 1000:.2f} | {m['cpu_us_per_reply']:.1f} | {ratio(cpu)} | {ratio(rps)} | "
                f"{ratio(versusBaseline)} | {wrong} |"
            )
    return "\n".join(rows)


@dataclass(frozen=True)
class Target:
    """
    A target: in workload C{workload}, the median over rounds of C{key}
    (C{rps}, C{p50_us}, C{cpu_us_per_reply}) of C{server} over that of
    C{reference}, round by round, at most C{limit} (at least, when
    C{least}); without a reference, the worst round's C{key} itself.
    """

    text: str
    workload: str
    server: str
    key: str
    limit: float
    reference: str | None = "ceiling"
    least: bool = False


def targets(
    results: list[dict[str, Any]], aims: tuple[Target, ...], idle: dict[str, float], idleLimit: float
) -> str:
    """
    @return: a table of the C{aims} measured in C{results} (those whose
        workload was measured), the memory of an idle connection, and
        replies wrong or out of order: met or not.
    """
    rows = ["| target | measured | limit | met |", "|---|---|---|---|"]
    byWorkload = grouped(results)
    for aim in aims:
        servers = byWorkload.get(aim.workload, {})
        if aim.server not in servers:
            continue
        runs = servers[aim.server]
        if aim.reference is None:
            value: float | None = max(r[aim.key] for r in runs) / 1e6
            shown, limit = f"{value:.3f} s", f"{aim.limit:g} s"
        else:
            if aim.reference not in servers:
                continue
            value = pairedRatio(runs, servers[aim.reference], aim.key)
            shown, limit = ratio(value), f"{'≥' if aim.least else '≤'} {aim.limit:g}x"
        if value is None:
            continue
        met = value >= aim.limit if aim.least else value <= aim.limit
        rows.append(f"| {aim.text} | {shown} | {limit} | {'yes' if met else 'no'} |")
    if "avatard" in idle:
        kib = idle["avatard"] / 1024
        rows.append(
            f"| memory per idle connection | {kib:.2f} KiB | ≤ {idleLimit:g} KiB | "
            f"{'yes' if kib <= idleLimit else 'no'} |"
        )
    wrong = sum(r["wrong"] + r["closed"] for r in results if r["server"] not in ("baseline", "baseline-pg"))
    rows.append(
        f"| replies wrong or out of order, every workload | {wrong} | 0 | {'yes' if wrong == 0 else 'no'} |"
    )
    return "\n".join(rows)


FIFTY = "50 connections, 1 request at a time (100k users)"
PIPELINED = "50 connections pipelining 16 (100k users)"
PER_CONNECTION = "one request per connection, 8 clients (100k users)"
SINGLE = "single connection (100k users)"
BURST = "burst of 2,000 clients (100k users)"
COLD = "cold: every lookup a miss (1M users)"
ZIPF = "scale: Zipf-distributed logins, 50 connections, default cache"
ZIPF_SMALL = "avatard, 1k users"
ZIPF_LARGE = "avatard, 1M users"

AIMS = (
    Target("pipelined 16: CPU per reply over the ceiling's", PIPELINED, "avatard", "cpu_us_per_reply", 1.05),
    Target(
        "50 connections, 1 request at a time: CPU per reply over the ceiling's",
        FIFTY,
        "avatard",
        "cpu_us_per_reply",
        1.1,
    ),
    Target(
        "one request per connection: CPU per reply over the ceiling's",
        PER_CONNECTION,
        "avatard",
        "cpu_us_per_reply",
        1.25,
    ),
    Target("single connection: p50 latency over the ceiling's", SINGLE, "avatard", "p50_us", 1.5),
    Target(
        "Zipf: CPU per reply on 1M users over that on 1k users",
        ZIPF,
        ZIPF_LARGE,
        "cpu_us_per_reply",
        1.15,
        reference=ZIPF_SMALL,
    ),
    Target(
        "cold: req/s over the original style's", COLD, "avatard", "rps", 3.0, reference="baseline", least=True
    ),
    Target("burst of 2,000 clients: p99, worst round", BURST, "avatard", "p99_us", 1.0, reference=None),
)
"""
The targets of docs/PERFORMANCE.md, each judged on one run's rounds.
"""

IDLE_LIMIT_KIB = 4.0
"""
The most memory an idle connection may cost avatard, in KiB.
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every measurement (default 5)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement (default 3)")
    parser.add_argument(
        "--warm",
        type=float,
        default=2.0,
        help="seconds each server is warmed on a workload first (default 2)",
    )
    parser.add_argument("--json", default="benchmark.json", help="where to write every measurement")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections for the memory row")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (databases, logs)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="TEXT",
        help="measure only the workloads whose name contains TEXT (any case); may be given several times",
    )
    parser.add_argument(
        "--daemon",
        action="append",
        default=[],
        metavar="NAME=ARGUMENTS",
        help="also measure avatard started with these extra daemon arguments (e.g. "
        "'workers2=--workers 2'), as server NAME, beside avatard in every workload on 100k users",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also measure on PostgreSQL, in a schema of its own at this server "
        "(e.g. postgresql://postgres@127.0.0.1:5432/test)",
    )
    parser.add_argument(
        "--postgres-only", action="store_true", help="with --postgres, measure only on PostgreSQL"
    )
    options = parser.parse_args()
    if options.postgres_only and not options.postgres:
        parser.error("--postgres-only needs --postgres URL")
    extra: dict[str, list[str]] = {}
    for given in options.daemon:
        name, equals, arguments = given.partition("=")
        if not equals or not name or name in ("avatard", "avatard-2", "baseline", "ceiling", "trivial"):
            parser.error(f"--daemon takes NAME=ARGUMENTS, NAME not a server of the benchmark's: {given!r}")
        extra[name] = shlex.split(arguments)
    options.extra = extra

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
    for turn, part in zip(
        rounds_and_warm(rounds), cold(SIZES["100k"], seed=2, parts=rounds + 1), strict=True
    ):
        writeRequests(directory / f"cold-pg100k-{turn}.txt", part)
    servers = [
        avatard("pg100k", url, directory),
        avatard("pg100k", url, directory, name="avatard-2"),
        other("baseline-pg", "pg100k", url),
        # Its own daemon, whose cache only ever sees the cold requests.
        avatard("pg100k-cold", url, directory),
    ]
    pair = alike(("avatard", "baseline-pg"), "pg100k", "mixed-100k")
    workloads = [
        Workload(
            "PostgreSQL: 50 connections, 1 request at a time (100k users)",
            pair,
            ("--conns", "50"),
            "baseline-pg",
        ),
        Workload(
            "PostgreSQL: 50 connections pipelining 16 (100k users)",
            pair,
            ("--conns", "50", "--depth", "16"),
            "baseline-pg",
        ),
        Workload(
            "PostgreSQL: one request per connection, 8 clients (100k users)",
            pair,
            ("--mode", "per-connection", "--conns", "8"),
            "baseline-pg",
        ),
        Workload("PostgreSQL: single connection (100k users)", pair, ("--conns", "1"), "baseline-pg"),
        Workload(
            "PostgreSQL cold: every lookup a miss (100k users)",
            (
                Contender("avatard", ("avatard", "pg100k-cold"), "cold-pg100k-{round}"),
                Contender("baseline-pg", ("baseline-pg", "pg100k"), "cold-pg100k-{round}"),
            ),
            ("--conns", "50"),
            "baseline-pg",
        ),
        Workload(
            "PostgreSQL: 50 connections to each of 2 nodes vs 1 node (100k users)",
            (
                Contender("avatard", ("avatard", "pg100k"), "mixed-100k"),
                Contender(TWO_NODES, (TWO_NODES, "pg100k"), "mixed-100k"),
            ),
            ("--conns", "50"),
            "avatard",
        ),
    ]
    return servers, workloads


def rounds_and_warm(rounds: int) -> list[str]:
    """
    @return: the names of the request files of a workload that asks other
        requests every round: one per round, and C{warm}.
    """
    return [*(str(turn) for turn in range(rounds)), "warm"]


def runWith(directory: Path, options: argparse.Namespace, binary: Path, postgres: str | None) -> None:
    if options.postgres_only:
        assert postgres is not None
        writeRequests(directory / "mixed-100k.txt", mixed(SIZES["100k"], 200_000, seed=SIZES["100k"]))
        servers, workloads = postgresMeasurements(directory, postgres, options.rounds)
        measure(directory, options, binary, servers, select(workloads, options.only), {})
        return
    paths = {name: directory / f"users-{name}.sqlite" for name in SIZES}
    servers = [
        avatard("100k", paths["100k"], directory),
        other("baseline", "100k", paths["100k"]),
        other("ceiling", "100k", paths["100k"]),
        *(
            avatard("100k", paths["100k"], directory, name=name, options=tuple(arguments))
            for name, arguments in options.extra.items()
        ),
        avatard("1k", paths["1k"], directory),
        avatard("1M", paths["1M"], directory),
        # Its own daemon, whose cache only ever sees the cold requests.
        avatard("1M-cold", paths["1M"], directory),
        other("baseline", "1M", paths["1M"]),
        other("trivial", "none", paths["1k"]),
    ]
    on100k = ("avatard", *options.extra, "baseline", "ceiling")
    workloads = [
        Workload(FIFTY, alike(on100k, "100k", "mixed-100k"), ("--conns", "50")),
        Workload(PIPELINED, alike(on100k, "100k", "mixed-100k"), ("--conns", "50", "--depth", "16")),
        Workload(
            PER_CONNECTION, alike(on100k, "100k", "mixed-100k"), ("--mode", "per-connection", "--conns", "8")
        ),
        Workload(SINGLE, alike(on100k, "100k", "mixed-100k"), ("--conns", "1")),
        Workload(BURST, alike(on100k, "100k", "mixed-100k"), ("--mode", "burst", "--conns", "2000")),
        Workload(
            COLD,
            (
                Contender("avatard", ("avatard", "1M-cold"), "cold-1M-{round}"),
                Contender("baseline", ("baseline", "1M"), "cold-1M-{round}"),
            ),
            ("--conns", "50"),
            "baseline",
        ),
        Workload(
            ZIPF,
            (
                Contender(ZIPF_SMALL, ("avatard", "1k"), "zipf-1k-{round}"),
                Contender(ZIPF_LARGE, ("avatard", "1M"), "zipf-1M-{round}"),
            ),
            ("--conns", "50"),
            ZIPF_SMALL,
        ),
        Workload(
            "load generator check: trivial server", alike(("trivial",), "none", "trivial"), ("--conns", "50")
        ),
        Workload(
            "load generator check: trivial server, pipelining 16",
            alike(("trivial",), "none", "trivial"),
            ("--conns", "50", "--depth", "16"),
        ),
    ]
    workloads = select(workloads, options.only)
    used = {c.server[1] for w in workloads for c in w.contenders}
    for name, users in SIZES.items():
        if not any(database.split("-")[0] == name for database in used):
            continue
        started = time.monotonic()
        makeDatabase(paths[name], users)
        print(f"database {name}: {users:,} users in {time.monotonic() - started:.1f} s", file=sys.stderr)
    writeRequests(directory / "mixed-100k.txt", mixed(SIZES["100k"], 200_000, seed=SIZES["100k"]))
    fills = {}
    if ZIPF in {w.name for w in workloads}:
        for name in ("1k", "1M"):
            started = time.monotonic()
            fills["avatard", name] = writeZipfRequests(directory, name, options.rounds)
            print(f"Zipf requests on {name}: {time.monotonic() - started:.1f} s", file=sys.stderr)
    if COLD in {w.name for w in workloads}:
        # One part per round and one to warm up, so that no round asks for a
        # login an earlier one did.
        for turn, part in zip(
            rounds_and_warm(options.rounds), cold(SIZES["1M"], seed=1, parts=options.rounds + 1), strict=True
        ):
            writeRequests(directory / f"cold-1M-{turn}.txt", part)
    writeRequests(directory / "trivial.txt", (("WHO x", "OK") for _ in range(1)))
    if postgres is not None:
        more, postgresWorkloads = postgresMeasurements(directory, postgres, options.rounds)
        servers += more
        workloads += select(postgresWorkloads, options.only)
    measure(directory, options, binary, servers, workloads, fills)


def select(workloads: list[Workload], only: list[str] | None) -> list[Workload]:
    """
    @return: the C{workloads} whose name contains one of C{only} (any
        case); all of them without C{only}.
    """
    if not only:
        return workloads
    return [w for w in workloads if any(text.lower() in w.name.lower() for text in only)]


def fill(binary: Path, server: Server, path: Path) -> None:
    """
    Send C{server} every request of C{path} once, pipelined, however long
    that takes the machine of the day (up to L{FILL_LIMIT}), and check
    every reply.
    """
    filled = loadgen(
        binary, server.port, path, ("--conns", "50", "--depth", "16", "--warmup", "0", "--once"), FILL_LIMIT
    )
    with path.open("rb") as f:
        lines = sum(1 for _ in f)
    if filled["replies"] != lines or filled["wrong"]:
        raise RuntimeError(
            f"filling {server.name} on {server.database}: {filled['replies']:,} of {lines:,} requests "
            f"answered within {FILL_LIMIT:g} s, {filled['wrong']:,} wrong"
        )
    print(
        f"filled {server.name} on {server.database}: all {lines:,} requests in {filled['seconds']:.1f} s",
        file=sys.stderr,
    )


def drive(
    binary: Path,
    servers: list[Server],
    requests: Path,
    arguments: tuple[str, ...],
    duration: float,
) -> dict[str, Any]:
    """
    Drive C{servers} (two nodes at once, or one) for C{duration} seconds.

    @return: what the load generator measured, and C{cpu_us_per_reply}:
        the processor time the servers spent meanwhile, every thread and
        process of theirs, per reply they sent.
    """
    cpu = sum(server.cpuSeconds() for server in servers)
    arguments = (*arguments, "--warmup", "0")
    if len(servers) > 1:
        measured = loadgenTogether(binary, [s.port for s in servers], requests, arguments, duration)
    else:
        measured = loadgen(binary, servers[0].port, requests, arguments, duration)
    spent = sum(server.cpuSeconds() for server in servers) - cpu
    return measured | {"cpu_us_per_reply": spent / max(1, measured["replies"]) * 1e6}


def measure(
    directory: Path,
    options: argparse.Namespace,
    binary: Path,
    servers: list[Server],
    workloads: list[Workload],
    fills: dict[tuple[str, str], Path],
) -> None:
    """
    Measure C{workloads}, one after another: each server of a workload is
    first warmed on it for C{options.warm} seconds, then the servers are
    measured in turn, C{options.duration} seconds each, round after round.

    @param fills: a requests file to send, pipelined, to some servers
        before anything is measured, by server.
    """
    find = {(s.name, s.database): s for s in servers}
    used = {c.server for w in workloads for c in w.contenders}
    if (TWO_NODES, "pg100k") in used:
        used |= {("avatard", "pg100k"), ("avatard-2", "pg100k")}
    measureIdle = any(c.server == ("avatard", "100k") for w in workloads for c in w.contenders)
    if measureIdle:
        used |= {("avatard", "100k"), ("ceiling", "100k")}
    started = [s for s in servers if (s.name, s.database) in used]

    def serversOf(contender: Contender) -> list[Server]:
        if contender.server[0] == TWO_NODES:
            return [find["avatard", contender.server[1]], find["avatard-2", contender.server[1]]]
        return [find[contender.server]]

    results: list[dict[str, Any]] = []
    with running(started, directory):
        for key, path in fills.items():
            if key in used:
                fill(binary, find[key], path)
        for workload in workloads:
            for contender in workload.contenders:
                requests = directory / f"{contender.requests.format(round='warm')}.txt"
                warmed = drive(binary, serversOf(contender), requests, workload.arguments, options.warm)
                print(
                    f"warm: {workload.name}: {contender.label}: {warmed['rps']:,.0f} req/s, "
                    f"wrong {warmed['wrong']}",
                    file=sys.stderr,
                )
            for turn in range(options.rounds):
                for contender in workload.contenders:
                    requests = directory / f"{contender.requests.format(round=turn)}.txt"
                    measured = drive(
                        binary, serversOf(contender), requests, workload.arguments, options.duration
                    )
                    measured |= {"workload": workload.name, "server": contender.label, "round": turn}
                    results.append(measured)
                    print(
                        f"round {turn + 1}: {workload.name}: {contender.label}: "
                        f"{measured['rps']:,.0f} req/s, "
                        f"p99 {measured['p99_us'] / 1000:.2f} ms, "
                        f"{measured['cpu_us_per_reply']:.1f} µs CPU/reply, wrong {measured['wrong']}",
                        file=sys.stderr,
                    )
        memory = (
            {name: idleConnectionCost(find[(name, "100k")], options.idle) for name in ("avatard", "ceiling")}
            if measureIdle
            else {}
        )
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    Path(options.json).write_text(
        json.dumps({"machine": machine(), "date": when, "results": results, "idle": memory}, indent=1)
    )
    print(f"machine: {machine()}; {when}")
    print(
        f"{options.rounds} rounds of {options.duration:g} s, interleaved, after {options.warm:g} s "
        "of warm-up per server and workload; medians over the rounds, ratios the medians of the "
        "rounds' own ratios"
    )
    print()
    print(table(results, {w.name: w.reference for w in workloads}))
    print()
    for name, cost in memory.items():
        print(f"idle connections ({options.idle:,}), {name}: {cost / 1024:.2f} KiB RSS each")
    print()
    print(targets(results, AIMS, memory, IDLE_LIMIT_KIB))
    if options.extra:
        print()
        print(versusAvatard(results, tuple(options.extra)))


def versusAvatard(results: list[dict[str, Any]], names: tuple[str, ...]) -> str:
    """
    @return: a table of the servers C{names} (avatard with extra daemon
        arguments) against avatard: throughput and CPU per reply, each the
        median of the rounds' own ratios.
    """
    rows = ["| workload | server | req/s vs avatard | CPU/reply vs avatard |", "|---|---|---|---|"]
    for workload, servers in grouped(results).items():
        for name in names:
            if name in servers and "avatard" in servers:
                rps = pairedRatio(servers[name], servers["avatard"], "rps")
                cpu = pairedRatio(servers[name], servers["avatard"], "cpu_us_per_reply")
                rows.append(f"| {workload} | {name} | {ratio(rps)} | {ratio(cpu)} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
