"""
What hostile clients cost a well-behaved one: C{python -m benchmarks.hostile}.

It starts the real C{twistd -n avatard} on a demo database and measures the
latency of a well-behaved client while other clients misbehave:

 - C{greedy}: 200 clients each pipeline 100,000 C{WHO} requests and never
   read a reply (then read the start of their replies, which must be right
   and in order);
 - C{scrapes}: bursts of 500 C{/metrics} scrapes arrive at once, one burst
   after another.

The well-behaved client sends C{WHO} requests at a fixed rate on one
connection, whatever the replies do (an open loop: a stall delays every
request sent during it, as it delays real clients), and each latency is
counted from the moment its request was due.  Figures are printed as JSON:
the latency percentiles, the server's processor time and its resident
memory.

C{--tree DIR} runs the avatard of another source tree (an older commit,
checked out elsewhere), so that two versions can be measured side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

GREEDY_LOGINS = (b"yoen", b"esteban", b"mohamed", b"nobody")
REPLIES = {
    b"yoen": b"OK Mr 'Yoen Van der Veld' is connected under 'yoen'\r\n",
    b"esteban": "OK Mr 'Estebán Garcia Marquez' is connected under 'esteban'\r\n".encode(),
    b"mohamed": "OK Mr 'Mohamed Al Ghâlib' is connected under 'mohamed'\r\n".encode(),
    b"nobody": b"ERR not-found no such login\r\n",
}
CHECKED_BYTES = 256 * 1024
"""
How much of its replies each greedy client reads and checks at the end.
"""


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpuSeconds(pid: int) -> float:
    """
    @return: the processor time process C{pid} has used, user and system,
        all threads.
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def residentMiB(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def daemon(tree: Path, directory: Path, *options: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """
    Run C{twistd -n avatard} from C{tree} on a demo database.

    @return: the process and its WHO port.
    """
    db = directory / "demo.sqlite"
    if not db.exists():
        subprocess.run(
            [sys.executable, "-m", "avatard", "init", "--demo", str(db)],
            env={**os.environ, "PYTHONPATH": str(tree)},
            check=True,
            capture_output=True,
        )
    port = freePort()
    twistd = Path(sys.executable).parent / "twistd"
    log = (directory / "twistd.log").open("ab")
    where = f"tcp:{port}:interface=127.0.0.1"
    process = subprocess.Popen(
        [str(twistd), "-n", "--pidfile=", "avatard", "--db", str(db), "--port", where, *options],
        cwd=directory,
        env={**os.environ, "PYTHONPATH": str(tree)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"PING\n")
                    if s.recv(100) == b"OK pong\r\n":
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield process, port
    finally:
        process.terminate()
        process.wait(30)


class OpenLoopClient:
    """
    Sends C{WHO esteban} every C{interval} seconds on one connection, and
    times each reply from the moment its request was due.
    """

    def __init__(self, port: int, interval: float) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.interval = interval
        self.due: list[float] = []
        self.latencies: list[float] = []
        self.wrong = 0
        self._sent = threading.Event()

    def run(self, seconds: float) -> None:
        reader = threading.Thread(target=self._read, daemon=True)
        reader.start()
        start = time.monotonic()
        n = 0
        while True:
            due = start + n * self.interval
            if due - start >= seconds:
                break
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.due.append(due)
            self.socket.sendall(b"WHO esteban\n")
            n += 1
        self._sent.set()
        reader.join(120)
        self.socket.close()

    def _read(self) -> None:
        buffer = b""
        answered = 0
        expected = REPLIES[b"esteban"]
        while True:
            try:
                chunk = self.socket.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            now = time.monotonic()
            buffer += chunk
            while b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                if line + b"\r\n" != expected:
                    self.wrong += 1
                self.latencies.append(now - self.due[answered])
                answered += 1
            if self._sent.is_set() and answered == len(self.due):
                return

    def summary(self) -> dict[str, Any]:
        latencies = sorted(self.latencies)
        if not latencies:
            return {"requests": len(self.due), "replies": 0}
        return {
            "requests": len(self.due),
            "replies": len(latencies),
            "wrong": self.wrong,
            "p50_ms": round(statistics.median(latencies) * 1000, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
            "max_ms": round(latencies[-1] * 1000, 2),
        }


def flood(port: int, clients: int, requests: int) -> None:
    """
    The greedy clients, run in a process of their own: connect C{clients}
    connections, pipeline C{requests} requests on each without reading,
    say C{flooding} on standard output once all are connected and sending,
    then, when standard input closes, read and check the start of each
    connection's replies and print what was found.
    """
    pattern = b"".join(b"WHO %s\n" % login for login in GREEDY_LOGINS)
    expected = b"".join(REPLIES[login] for login in GREEDY_LOGINS)
    payload = pattern * (requests // len(GREEDY_LOGINS))
    sockets = []
    for _ in range(clients):
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.setblocking(False)
        sockets.append(s)
    offsets = dict.fromkeys(sockets, 0)
    selector = selectors.DefaultSelector()
    for s in sockets:
        selector.register(s, selectors.EVENT_WRITE)
    print("flooding", flush=True)
    stop = threading.Event()

    def stopOnEndOfInput() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=stopOnEndOfInput, daemon=True).start()
    while not stop.is_set() and selector.get_map():
        for key, _ in selector.select(timeout=0.1):
            s = key.fileobj  # type: ignore[assignment]
            try:
                offsets[s] += s.send(payload[offsets[s] : offsets[s] + 65536])
            except BlockingIOError:
                continue
            if offsets[s] >= len(payload):
                selector.unregister(s)
    stop.wait()
    sent = sum(offsets.values())
    good = bad = 0
    for s in sockets:
        s.setblocking(True)
        s.settimeout(60)
        data = b""
        while len(data) < CHECKED_BYTES:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        whole = len(data) // len(expected) * len(expected)
        if data[:whole] == expected * (whole // len(expected)):
            good += 1
        else:
            bad += 1
        s.close()
    print(
        json.dumps({"sent_mib": round(sent / 2**20, 1), "checked_ok": good, "checked_wrong": bad}), flush=True
    )


def greedy(tree: Path, directory: Path, options: argparse.Namespace) -> dict[str, Any]:
    with daemon(tree, directory) as (process, port):
        before = residentMiB(process.pid)
        flooder = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.hostile",
                "--flood",
                str(port),
                str(options.clients),
                str(options.requests),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert flooder.stdout is not None
        assert flooder.stdin is not None
        if flooder.stdout.readline().strip() != b"flooding":
            raise RuntimeError("the greedy clients did not start")
        time.sleep(1)
        cpu = cpuSeconds(process.pid)
        client = OpenLoopClient(port, options.interval)
        client.run(options.seconds)
        cpu = cpuSeconds(process.pid) - cpu
        after = residentMiB(process.pid)
        flooder.stdin.close()
        checked = json.loads(flooder.stdout.readline())
        flooder.wait(120)
        return {**client.summary(), **checked, "rss_before_mib": before, "rss_after_mib": after, "cpu_s": cpu}


def scrapeBurst(port: int, count: int) -> int:
    """
    Scrape C{/metrics} C{count} times at once.

    @return: how many scrapes were answered with C{200 OK}.
    """
    request = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    selector = selectors.DefaultSelector()
    received: dict[socket.socket, bytes] = {}
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        selector.register(s, selectors.EVENT_WRITE)
        received[s] = b""
    deadline = time.monotonic() + 60
    while selector.get_map() and time.monotonic() < deadline:
        for key, events in selector.select(timeout=1):
            s = key.fileobj  # type: ignore[assignment]
            if events & selectors.EVENT_WRITE:
                s.send(request)
                selector.modify(s, selectors.EVENT_READ)
                continue
            chunk = s.recv(65536)
            received[s] += chunk
            if not chunk:
                selector.unregister(s)
    ok = 0
    for s, data in received.items():
        ok += data.startswith(b"HTTP/1.1 200")
        s.close()
    selector.close()
    return ok


def scrapes(tree: Path, directory: Path, options: argparse.Namespace) -> dict[str, Any]:
    metricsPort = freePort()
    with daemon(tree, directory, "--metrics", f"tcp:{metricsPort}:interface=127.0.0.1") as (process, port):
        answered: list[int] = []
        stop = threading.Event()

        def scrapeAgain() -> None:
            while not stop.is_set():
                answered.append(scrapeBurst(metricsPort, options.scrapes))

        cpu = cpuSeconds(process.pid)
        scraper = threading.Thread(target=scrapeAgain, daemon=True)
        scraper.start()
        client = OpenLoopClient(port, options.interval)
        client.run(options.seconds)
        stop.set()
        scraper.join(120)
        cpu = cpuSeconds(process.pid) - cpu
        return {
            **client.summary(),
            "bursts": len(answered),
            "scrapes_ok": sum(answered),
            "scrapes": len(answered) * options.scrapes,
            "cpu_s": cpu,
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenario", nargs="?", choices=("greedy", "scrapes"), default="greedy")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the source tree whose avatard runs")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the latency is measured")
    parser.add_argument("--interval", type=float, default=0.002, help="seconds between well-behaved requests")
    parser.add_argument("--clients", type=int, default=200, help="greedy clients")
    parser.add_argument("--requests", type=int, default=100_000, help="requests each greedy client sends")
    parser.add_argument("--scrapes", type=int, default=500, help="scrapes per burst")
    parser.add_argument("--flood", nargs=3, type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.flood:
        flood(*options.flood)
        return
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    with tempfile.TemporaryDirectory(prefix="avatard-hostile-") as directory:
        run = greedy if options.scenario == "greedy" else scrapes
        result = run(options.tree.resolve(), Path(directory), options)
    print(json.dumps({"scenario": options.scenario, "tree": str(options.tree), **result}))


if __name__ == "__main__":
    main()
