"""
The benchmark's load generator (C{benchmarks/loadgen.c}), against the real
daemon: what the benchmark relies on it to do, not how fast it goes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from benchmarks.run import compileLoadgen, processTree, treeCPU
from tests.daemon import REPO as ROOT
from tests.daemon import Daemon, environment, receiveLines
from tests.helpers import TUTORIAL_REPLIES, tutorialDatabase


class LoadGeneratorOnceTests(SynchronousTestCase):
    """
    C{--once}: every request of the file sent once, and the run ends when
    all are answered, however long that takes.  The benchmark fills a
    daemon's cache with it before measuring that cache's steady state.
    """

    def setUp(self) -> None:
        compiler = os.environ.get("CC", "cc")
        if shutil.which(compiler) is None:
            self.fail(f"the benchmark needs a C compiler ({compiler})")
        self.directory = Path(os.path.abspath(self.mktemp()))
        self.directory.mkdir()
        self.binary = compileLoadgen(self.directory)
        self.requests = self.directory / "requests.txt"
        logins = sorted(TUTORIAL_REPLIES)
        with self.requests.open("w", encoding="utf-8") as f:
            for n in range(1000):
                login = logins[n % len(logins)]
                f.write(f"WHO {login}\t{TUTORIAL_REPLIES[login].decode()[:-2]}\n")

    def loadgen(self, port: int, *arguments: str) -> dict[str, Any]:
        result = subprocess.run(
            [str(self.binary), "--port", str(port), "--requests", str(self.requests), *arguments],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def test_everyRequestAnsweredOnceThenStop(self) -> None:
        """
        With C{--once}, the load generator sends each of the file's 1,000
        requests exactly once, over several pipelining connections, checks
        every reply, and stops when the last is answered, long before its
        time limit: the daemon answers exactly 1,000 C{WHO} requests.
        """
        db = tutorialDatabase(str(self.directory / "users.sqlite"))
        daemon = Daemon(str(self.directory), "--db", db, "--port", "tcp:0:interface=127.0.0.1")
        self.addCleanup(daemon.stop, signal.SIGKILL)
        measured = self.loadgen(
            daemon.port, "--conns", "7", "--depth", "16", "--warmup", "0", "--once", "--duration", "50"
        )
        self.assertEqual((measured["replies"], measured["requests"], measured["wrong"]), (1000, 1000, 0))
        self.assertLess(measured["seconds"], 50)
        with daemon.connect() as s:
            s.sendall(b"STATS\n")
            stats = receiveLines(s, 1).decode()
        counts = dict(field.split("=") for field in stats.split()[1:])
        # Every WHO is a cache hit or a miss; STATS itself is neither.
        self.assertEqual(int(counts["cache.hits"]) + int(counts["cache.misses"]), 1000, stats)

    def test_withoutOnceTheFileIsAskedAgain(self) -> None:
        """
        Without C{--once}, the load generator goes round the file for as
        long as it is told: the run C{--once} is checked against.
        """
        db = tutorialDatabase(str(self.directory / "users.sqlite"))
        daemon = Daemon(str(self.directory), "--db", db, "--port", "tcp:0:interface=127.0.0.1")
        self.addCleanup(daemon.stop, signal.SIGKILL)
        measured = self.loadgen(
            daemon.port, "--conns", "7", "--depth", "16", "--warmup", "0", "--duration", "1"
        )
        self.assertGreater(measured["replies"], 1000)
        self.assertEqual(measured["wrong"], 0)

    def test_onceOnlyKeepsConnectionsOpen(self) -> None:
        """
        C{--once} is refused, with the usage, in the modes that open a
        connection per request.
        """
        for mode in ("per-connection", "burst"):
            result = subprocess.run(
                [str(self.binary), "--port", "1", "--requests", str(self.requests), "--mode", mode, "--once"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            self.assertEqual(result.returncode, 2)
            self.assertIn("--once", result.stderr)


class HostileBenchmarkTests(SynchronousTestCase):
    """
    C{python -m benchmarks.hostile}, in small: it runs against the real
    daemon, and what it checks holds (every well-behaved reply right, the
    start of every greedy client's replies right and in order, every
    scrape answered).
    """

    def hostile(self, *arguments: str) -> dict[str, Any]:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.hostile",
                *arguments,
                "--seconds",
                "0.5",
                "--interval",
                "0.01",
            ],
            cwd=ROOT,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def test_greedy(self) -> None:
        """
        Greedy clients, and a well-behaved client answered throughout.
        """
        measured = self.hostile("greedy", "--clients", "3", "--requests", "20000")
        self.assertEqual(measured["replies"], measured["requests"])
        self.assertGreater(measured["replies"], 0)
        self.assertEqual((measured["wrong"], measured["checked_ok"], measured["checked_wrong"]), (0, 3, 0))

    def test_scrapes(self) -> None:
        """
        Bursts of scrapes, every one answered, and a well-behaved client
        answered throughout.
        """
        measured = self.hostile("scrapes", "--scrapes", "30")
        self.assertEqual(measured["replies"], measured["requests"])
        self.assertEqual(measured["wrong"], 0)
        self.assertGreater(measured["bursts"], 0)
        self.assertEqual(measured["scrapes_ok"], measured["scrapes"])


_TREE = """
import os, subprocess, sys, time
child = subprocess.Popen(
    [sys.executable, "-c",
     "import time\\nstart = time.process_time()\\n"
     "while time.process_time() - start < 0.3: pass\\nprint('spent', flush=True)\\ninput()"],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
)
print(child.stdout.readline().strip(), flush=True)
input()
child.communicate("\\n")
print("reaped", flush=True)
input()
"""
"""
A process that starts a child, which spends 0.3 s of processor time and
says so, then waits; the parent says so, waits, lets the child end and
waits for it, says so, and waits again.
"""


class ProcessTreeCPUTests(SynchronousTestCase):
    """
    L{treeCPU}, the processor time the benchmark counts for a server, is
    that of the server's whole tree of processes: a server of several
    processes is measured whole.
    """

    def test_childrenCounted(self) -> None:
        """
        A child's processor time is counted in its parent's tree while the
        child runs, and still once the parent has waited for it to end.
        """
        parent = subprocess.Popen(
            [sys.executable, "-c", _TREE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.addCleanup(parent.kill)
        assert parent.stdin is not None
        assert parent.stdout is not None
        self.assertEqual(parent.stdout.readline().strip(), "spent")
        self.assertGreater(len(processTree(parent.pid)), 1)
        running = treeCPU(parent.pid)
        self.assertGreaterEqual(running, 0.3)
        parent.stdin.write("\n")
        parent.stdin.flush()
        self.assertEqual(parent.stdout.readline().strip(), "reaped")
        self.assertEqual(processTree(parent.pid), [parent.pid])
        # Counted now in the parent's children's time, in hundredths.
        self.assertGreaterEqual(treeCPU(parent.pid), running - 0.02)
        parent.stdin.write("\n")
        parent.stdin.flush()
        parent.wait(30)


class RunWithAnotherDaemonTests(SynchronousTestCase):
    """
    C{python -m benchmarks.run --daemon NAME=ARGUMENTS}, in small: avatard
    started with extra arguments is measured beside avatard, in the same
    rounds, and compared with it.
    """

    def test_anotherDaemonMeasuredBesideAvatard(self) -> None:
        """
        The extra daemon is measured in every round of the chosen
        workload, checked like the others, and its throughput and
        processor time per reply are given over avatard's.
        """
        directory = Path(os.path.abspath(self.mktemp()))
        directory.mkdir()
        measurements = directory / "bench.json"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.run",
                *("--only", "single connection", "--rounds", "2", "--duration", "0.3", "--warm", "0.2"),
                *("--idle", "20", "--json", str(measurements), "--daemon", "small=--cache-size 10"),
            ],
            cwd=ROOT,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        results = json.loads(measurements.read_text())["results"]
        rounds = {(r["server"], r["round"]) for r in results}
        self.assertEqual(
            rounds, {(server, n) for server in ("avatard", "small", "baseline", "ceiling") for n in (0, 1)}
        )
        self.assertEqual(sum(r["wrong"] + r["closed"] for r in results if r["server"] != "baseline"), 0)
        self.assertTrue(all(r["cpu_us_per_reply"] > 0 for r in results))
        self.assertIn("| single connection (100k users) | small | ", result.stdout)
        self.assertIn("| target | measured | limit | met |", result.stdout)
        self.assertIn("req/s vs avatard | CPU/reply vs avatard", result.stdout)
