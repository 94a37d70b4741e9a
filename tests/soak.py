"""
A bounded soak test of the real C{twistd -n avatard}, on loopback only.

Run from the repository root: C{python -m tests.soak [--seconds 60] [--clients 4] [--seed N]}.

It creates a temporary database (the tutorial users and 10,000 generated
ones, C{u00000}...), starts one daemon on 127.0.0.1 with small limits and for
C{--seconds} runs client threads on blocking sockets: well-behaved clients
pipelining requests and checking each reply byte for byte and in order;
one-shot clients (one request, then C{SHUT_WR}); hostile input (random bytes,
NUL, controls, non-UTF-8, C{user@host}, blank and overlong lines); idle
clients; bursts beyond C{--max-connections}; a client flooding requests
without reading replies; database faults (an exclusive lock held every few
seconds; once, the file removed, then a fresh copy renamed into place).
C{ERR unavailable} is accepted for lookups only around a fault, C{ERR busy}
only as the first line of a connection.  Then it stops the daemon with
SIGTERM and prints a summary: per kind of client, connections, requests,
replies by code and violations; latency; the daemon's RSS; whether its log is
clean.  Exit status 0 if all is well, else 1.  It ends within C{--seconds}
plus 20 s whatever happens (a hung daemon is killed).
"""

from __future__ import annotations

import argparse
import os
import random
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing, suppress

from avatard.request.cache import CHECK_INTERVAL
from tests.daemon import Daemon, residentSize
from tests.helpers import TUTORIAL_REPLIES, TUTORIAL_USERS, tutorialDatabase

GENERATED, MAX_LINE, MAX_CONNECTIONS, IDLE_TIMEOUT, QUERY_TIMEOUT, GRACE = 10_000, 256, 200, 2.0, 1.0, 20.0
OPTIONS = (
    *("--port", "tcp:0:interface=127.0.0.1", "--max-connections", str(MAX_CONNECTIONS), "--max-per-ip"),
    *("0", "--idle-timeout", str(IDLE_TIMEOUT), "--query-timeout", str(QUERY_TIMEOUT)),
    *("--max-line", str(MAX_LINE), "--shutdown-timeout", "3", "--cache-ttl", "1"),
)
PONG, BYE, YOEN = b"OK pong\r\n", b"OK bye\r\n", TUTORIAL_REPLIES["yoen"]
# The faults client's login, which no other client asks for: its reply is
# not in the daemon's cache when a fault begins (faults are further apart
# than the cache TTL), so the fault shows.
PROBE, PROBED = b"WHO probe", b"OK Mr 'Fault Probe' is connected under 'probe'\r\n"
HELP = b"OK commands: WHO <login>, JSON <login>, PING, STATS, HELP, QUIT\r\n"
NOT_FOUND = b"ERR not-found no such login\r\n"
UNAVAILABLE = b"ERR unavailable the directory cannot be read right now, retry later\r\n"
TOO_LONG = b"ERR too-long request line too long, closing\r\n"
TIMEOUT = b"ERR timeout idle for too long, closing\r\n"
BUSY = b"ERR busy too many connections, retry later\r\n"
BAD = b"ERR bad-request "
HOSTILE: dict[bytes, bytes | None] = {
    b"": BAD + b"empty request, try HELP\r\n",
    b" \t ": BAD + b"empty request, try HELP\r\n",
    b"WHO root@localhost": BAD + b"forwarding (user@host) is not supported\r\n",
    b"WHO yo\x00en": BAD + b"login contains a control character\r\n",
    b"WHO \x1b[2Jyoen": BAD + b"login contains a control character\r\n",
    b"\xff\xfe WHO yoen": BAD + b"request is not valid UTF-8\r\n",
    b"WHO \xc3(": BAD + b"request is not valid UTF-8\r\n",
    b"QUIT now": BAD + b"this command takes no argument\r\n",
    b"FROB yoen": BAD + b"unknown command, try HELP\r\n",
    b"WHO yoen esteban": BAD + b"usage: WHO <login>\r\n",
    b"\x00\x00\x00": None,
    b"who yoen": YOEN,
    b"json yoen": b'OK {"login":"yoen","name":"Van der Veld","forname":"Yoen"}\r\n',
    b"JSON yoen esteban": BAD + b"usage: JSON <login>\r\n",
    b"WHO " + b"x" * (MAX_LINE - 4): NOT_FOUND,
}
CODES = ("OK", "not-found", "bad-request", "unavailable", "busy", "timeout", "too-long")
KINDS = ("well-behaved", "one-shot", "hostile", "idle", "burst", "flood", "faults")
Pairs = list[tuple[bytes, bytes | None]]


def replyCode(line: bytes) -> str | None:
    """@return: the code of a well-formed reply (C{OK} or what follows C{ERR}), else L{None}."""
    code = "OK" if line.startswith(b"OK ") else line[4:].split(b" ", 1)[0].decode("latin-1")
    good = line.endswith(b"\r\n") and b"\r" not in line[:-2] and (code == "OK" or line.startswith(b"ERR "))
    return code if good and code in CODES else None


class Connection:
    """
    A client socket reading reply lines.  After L{read}: C{lines}, C{times}
    (when each arrived) and C{end} (C{eof}, C{reset}, C{timeout} or C{""}).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.partial, self.end, self.wasReset = sock, b"", "", False
        self.ready: list[bytes] = []
        self.lines: list[bytes] = []
        self.times: list[float] = []

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as e:  # Closed by the server: what it said is read next.
            self.wasReset = isinstance(e, ConnectionResetError)  # Then recv() says only EOF.

    def shutWrite(self) -> None:
        with suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def read(self, count: int | None, limit: float = 10.0) -> list[bytes]:
        """Read C{count} lines, or up to the end of the connection if L{None}."""
        self.lines, self.times, self.end = [], [], ""
        until = time.monotonic() + limit
        while count is None or len(self.lines) < count:
            if self.ready:
                take = self.ready[: None if count is None else count - len(self.lines)]
                del self.ready[: len(take)]
                self.lines += take
                self.times += [time.monotonic()] * len(take)
                continue
            try:
                chunk = self.sock.recv(65536) if time.monotonic() < until else None
            except TimeoutError:
                chunk = None
            except OSError:
                self.end = "reset"
                break
            if not chunk:
                self.end = "timeout" if chunk is None else "reset" if self.wasReset else "eof"
                self.lines += [self.partial] if chunk is not None and self.partial else []
                break
            *complete, self.partial = (self.partial + chunk).split(b"\n")
            self.ready += [line + b"\n" for line in complete]
        return self.lines

    def close(self) -> None:
        self.sock.close()


class Soak:
    """What the clients share: the daemon, the deadline, the fault windows, every count."""

    def __init__(self, daemon: Daemon, db: str, seconds: float) -> None:
        self.daemon, self.db, self.seconds = daemon, db, seconds
        self.lock = threading.Lock()
        self.counts: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}
        self.violations: Counter[str] = Counter()
        self.examples: list[str] = []
        self.shown: Counter[tuple[str, str]] = Counter()
        self.latencies: list[tuple[float, float, float]] = []
        self.faults: list[list[float]] = []
        self.rss = [residentSize(daemon.process.pid) // 1024]
        self.start = time.monotonic()
        self.deadline = self.start + seconds

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def pause(self, seconds: float) -> bool:
        """Sleep, not past the deadline.  @return: whether the soak goes on."""
        time.sleep(max(0.0, min(seconds, self.remaining())))
        return self.remaining() > 0

    def count(self, kind: str, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts.setdefault(kind, Counter())[key] += n

    def violation(self, kind: str, what: str, detail: str) -> None:
        self.count(kind, "violations")
        with self.lock:
            self.violations[what] += 1
            self.shown[kind, what] += 1
            if len(self.examples) < 12 and self.shown[kind, what] <= 2:
                self.examples.append(f"[{time.monotonic() - self.start:5.1f} s] {kind}: {what}: {detail}")

    def duringFault(self, sent: float, received: float) -> bool:
        with self.lock:
            return any(start <= received and sent <= end + 0.5 for start, end in self.faults)

    def connect(self, kind: str, smallBuffers: bool = False) -> Connection | None:
        self.count(kind, "conns")
        try:
            if not smallBuffers:
                return Connection(self.daemon.connect(timeout=5.0))
            sock = socket.socket()
            for option in socket.SO_RCVBUF, socket.SO_SNDBUF:  # Or the kernel takes megabytes of a flood.
                sock.setsockopt(socket.SOL_SOCKET, option, 4096)
            sock.connect(("127.0.0.1", self.daemon.port))
            return Connection(sock)
        except OSError as e:
            self.violation(kind, "connect failed", repr(e))
            return None

    def verify(self, kind: str, c: Connection, pairs: Pairs, sent: float, closes: bool) -> bool:
        """
        Check the lines just read on C{c}: one reply per request of C{pairs}
        (L{None}: any well-formed line), then, if C{closes}, the end.
        @return: whether every reply came (C{False} after C{ERR busy}).
        """
        wanted = [want for _, want in pairs]
        wrong = 0
        for i, line in enumerate(c.lines):
            code = replyCode(line)
            self.count(kind, code or "malformed")
            if code is None:
                self.violation(kind, "malformed line", repr(line[:120]))
            if i == 0 and line == BUSY:
                return False
            want = wanted[i] if i < len(wanted) else b"(nothing)"
            if want is None or line == want or wrong >= 3:
                continue
            lookup = want.startswith(b"OK Mr ") or want == NOT_FOUND
            if line == UNAVAILABLE and lookup and self.duringFault(sent, c.times[i]):
                continue
            wrong += 1
            request = pairs[i][0][:80] if i < len(pairs) else b"(none)"
            what = "out of order" if line in wanted else "wrong reply"
            self.violation(kind, what, f"{request!r} -> {line[:120]!r}, expected {want!r}")
        if len(c.lines) < len(pairs):
            what = "connection reset" if c.end == "reset" else "missing reply"
            detail = f"{len(c.lines)} of {len(pairs)} replies ({c.end}); next {pairs[len(c.lines)][0][:80]!r}"
            self.violation(kind, what, detail)
            return False
        if closes and c.end != "eof":
            what = "connection reset" if c.end == "reset" else "not closed"
            self.violation(kind, what, f"after {pairs[-1][0][:80]!r}")
        return True

    def exchange(
        self, kind: str, pairs: Pairs, data: bytes, shut: bool = False, closes: bool = True
    ) -> list[bytes]:
        """Send C{data} (the requests of C{pairs}) on a new connection, read and verify the replies."""
        c = self.connect(kind)
        if c is None:
            return []
        with closing(c):
            sent = time.monotonic()
            c.send(data)
            self.count(kind, "requests", len(data.split(b"\n")) - (not data or data.endswith(b"\n")))
            if shut:
                c.shutWrite()
            c.read(None if closes else len(pairs))
            self.verify(kind, c, pairs, sent, closes)
        return c.lines

    def ask(self, kind: str, request: bytes, want: bytes | None = None) -> tuple[bytes | None, float]:
        """@return: the reply to C{request} on a new connection (again while C{ERR busy}), its delay."""
        started = time.monotonic()
        while time.monotonic() < started + 5.0:
            lines = self.exchange(kind, [(request, want)], request + b"\n", closes=False)
            if lines != [BUSY]:
                return (lines[0] if lines else None), time.monotonic() - started
            time.sleep(0.1)
        return None, time.monotonic() - started


def pickRequest(rng: random.Random) -> tuple[bytes, bytes]:
    """@return: a valid request and its exact reply."""
    roll, i = rng.random(), rng.randrange(GENERATED)
    if roll < 0.4:
        return f"WHO u{i:05d}".encode(), f"OK Mr 'Fore{i} Name{i}' is connected under 'u{i:05d}'\r\n".encode()
    if roll < 0.6:
        login = rng.choice(list(TUTORIAL_REPLIES))
        return rng.choice([b"WHO ", b"who ", b"  Who\t"]) + login.encode(), TUTORIAL_REPLIES[login]
    if roll < 0.85:
        return rng.choice([b"WHO nobody%d" % i, b"WHO u%d" % (GENERATED + i)]), NOT_FOUND
    return (b"PING", PONG) if roll < 0.95 else (b"HELP", HELP)


def wellBehaved(soak: Soak, rng: random.Random) -> None:
    while soak.pause(rng.uniform(0.0, 0.05)):
        c = soak.connect("well-behaved")
        if c is None:
            continue
        with closing(c):
            for _ in range(rng.randint(1, 10)):
                pairs: Pairs = [pickRequest(rng) for _ in range(rng.randint(1, 50))]
                sent = time.monotonic()
                c.send(b"".join(request + rng.choice([b"\n", b"\r\n"]) for request, _ in pairs))
                soak.count("well-behaved", "requests", len(pairs))
                c.read(len(pairs))
                if not soak.verify("well-behaved", c, pairs, sent, closes=False):
                    break
                with soak.lock:
                    soak.latencies += [(t - sent, sent, t) for t in c.times]
                time.sleep(rng.uniform(0.005, 0.03))
            else:
                c.send(b"QUIT\r\n")
                soak.count("well-behaved", "requests")
                c.read(None)
                soak.verify("well-behaved", c, [(b"QUIT", BYE)], time.monotonic(), closes=True)


def oneShot(soak: Soak, rng: random.Random) -> None:
    while soak.pause(0.02):
        request, reply = pickRequest(rng)
        soak.exchange("one-shot", [(request, reply)], request + rng.choice([b"\n", b"\r\n", b""]), shut=True)


def hostile(soak: Soak, rng: random.Random) -> None:
    while soak.pause(0.02):
        junk: Pairs = [(rng.randbytes(rng.randint(1, 60)).replace(b"\n", b""), None) for _ in range(9)]
        pairs = rng.choices([*HOSTILE.items(), *junk], k=rng.randint(1, 30))
        endings = [rng.choice([b"\n", b"\r\n"]) for _ in pairs]
        how = rng.choice(["too-long", "quit", "shutdown"])
        if how == "too-long":
            long = rng.randbytes(rng.randint(MAX_LINE + 1, 3 * MAX_LINE)).replace(b"\n", b"x")
            pairs.append((rng.choice([long, b"WHO " + b"x" * MAX_LINE]), TOO_LONG))
            endings.append(rng.choice([b"\n", b"\r\n"]))
        elif how == "quit":
            pairs.append((b"QUIT", BYE))
            endings.append(b"\n")
        elif pairs[-1][0].strip(b"\r"):
            endings[-1] = rng.choice([b"", b"\n"])  # An unterminated last line is a request too.
        data = b"".join(request + ending for (request, _), ending in zip(pairs, endings, strict=True))
        soak.exchange("hostile", pairs, data, shut=how == "shutdown")


def idle(soak: Soak, rng: random.Random) -> None:
    while soak.pause(rng.uniform(0.0, 0.5)):
        pairs: Pairs = [(b"PING", PONG)] * rng.randint(0, 1)
        started = time.monotonic()
        lines = soak.exchange("idle", [*pairs, (b"(silence)", TIMEOUT)], b"PING\n" * len(pairs))
        took = time.monotonic() - started
        if lines[-1:] == [TIMEOUT] and not IDLE_TIMEOUT - 0.2 < took < IDLE_TIMEOUT + 2.0:
            soak.violation("idle", "wrong reply", f"ERR timeout after {took:.1f} s idle")


def burst(soak: Soak, rng: random.Random) -> None:
    while soak.pause(6.0) and soak.remaining() > 4:
        opened = [c for c in (soak.connect("burst") for _ in range(MAX_CONNECTIONS + 30)) if c]
        time.sleep(0.3)  # Refused ones have their ERR busy by now; accepted ones must not idle 2 s.
        busy = 0
        for c in opened:
            with closing(c):
                accepted = not select.select([c.sock], [], [], 0)[0]
                c.send(b"PING\n" * accepted)
                soak.count("burst", "requests", accepted)
                c.read(1 if accepted else None)
                soak.verify("burst", c, [(b"PING", PONG) if accepted else (b"", BUSY)], 0.0, not accepted)
                busy += c.lines[:1] == [BUSY]
        if not busy:
            soak.violation("burst", "wrong reply", f"no ERR busy among {len(opened)} connections")
        started = time.monotonic()
        while soak.ask("burst", b"PING")[0] != PONG and soak.pause(0.2):
            if time.monotonic() > started + 5.0:
                soak.violation("burst", "missing reply", "connections not accepted again after the burst")
                break


def flood(soak: Soak, rng: random.Random) -> None:
    """
    Send requests without reading any reply for 1.5 s, then read them all.
    Every other time, send only C{PING}s and read nothing for longer than
    the idle timeout: the server has stopped reading meanwhile and owes
    replies, so it must not cut the client off.
    """
    hold = IDLE_TIMEOUT + 1.0
    while soak.pause(3.0) and soak.remaining() > 7:
        cycle: Pairs = [(b"PING\n", PONG)] if hold else [(b"WHO yoen\n", YOEN), (b"PING\n", PONG)]
        unit = b"".join(request for request, _ in cycle)
        c = soak.connect("flood", smallBuffers=True)
        if c is None:
            continue
        with closing(c):
            data, sent = unit * 400_000, 0
            c.sock.setblocking(False)
            started = probed = time.monotonic()
            while time.monotonic() < started + 1.5 + hold:
                try:
                    sent += c.sock.send(data[sent : sent + 65536]) if time.monotonic() < started + 1.5 else 0
                except BlockingIOError:
                    pass
                except OSError:  # Refused (ERR busy) or cut off: read what came.
                    break
                if time.monotonic() >= probed:
                    probed = time.monotonic() + 0.25
                    # Others are served meanwhile: by the reactor (PING) and the database (WHO).
                    request, want = rng.choice(
                        [(b"PING", PONG), (b"WHO esteban", TUTORIAL_REPLIES["esteban"])]
                    )
                    reply, took = soak.ask("flood", request, want)
                    if took > 2.0:
                        soak.violation("flood", "unresponsive", f"{request!r} -> {reply!r} in {took:.1f} s")
                time.sleep(0.002)
            end = sent + (-sent % len(unit))
            c.sock.settimeout(10.0)
            reader = threading.Thread(target=c.read, args=(None, 20.0), daemon=True)
            reader.start()
            c.send(data[sent:end])
            c.shutWrite()
            reader.join(25.0)
            pairs: Pairs = [(request.strip(), reply) for request, reply in cycle] * (end // len(unit))
            soak.count("flood", "requests", len(pairs))
            if not soak.verify("flood", c, pairs, started, closes=True) and hold and c.lines[:1] != [BUSY]:
                soak.violation("flood", "cut off", f"after {hold:g} s of not reading, {len(pairs)} requests")
        hold = IDLE_TIMEOUT + 1.0 - hold


def faults(soak: Soak, rng: random.Random) -> None:
    removed = False
    while soak.pause(5.0) and soak.remaining() > 6:
        window = [time.monotonic(), float("inf")]
        with soak.lock:
            soak.faults.append(window)
        if not removed and soak.remaining() < soak.seconds / 2:
            removed, what = True, "database removed"
            os.unlink(soak.db)
            # The daemon looks at its file, and for commits, every CHECK_INTERVAL.
            time.sleep(CHECK_INTERVAL * 5)
            reply, took = soak.ask("faults", PROBE)
            time.sleep(1.5)
            os.rename(soak.db + ".fresh", soak.db)
        else:
            what = "exclusive lock"
            with closing(sqlite3.connect(soak.db, isolation_level=None, timeout=5.0)) as holder:
                holder.execute("BEGIN EXCLUSIVE")
                time.sleep(0.01)
                reply, took = soak.ask("faults", PROBE)
                time.sleep(max(0.0, 2.0 - took))
                holder.execute("ROLLBACK")
        window[1] = time.monotonic()
        if reply != UNAVAILABLE or took > QUERY_TIMEOUT + 1.0:
            soak.violation("faults", "wrong reply", f"{what}: {PROBE.decode()} -> {reply!r} in {took:.1f} s")
        started = time.monotonic()
        while soak.ask("faults", PROBE)[0] != PROBED and soak.pause(0.2):
            if time.monotonic() > started + 5.0:
                soak.violation("faults", "missing reply", f"no recovery within 5 s after {what}")
                break


def guarded(soak: Soak, worker: Callable[[Soak, random.Random], None], rng: random.Random) -> None:
    try:
        worker(soak, rng)
    except Exception as e:
        soak.violation(worker.__name__, "script error", repr(e))


def report(soak: Soak, status: int | None, clients: int, seed: int) -> bool:
    """Print the summary.  @return: whether the run was clean."""
    print(f"avatard soak: {soak.seconds:g} s, {clients} well-behaved clients, seed {seed}")
    columns = ("conns", "requests", *CODES, "violations")
    total: Counter[str] = sum(soak.counts.values(), Counter())
    print(f"{'kind':<13}" + "".join(f"{c:>12}" for c in columns))
    for kind, counts in [*soak.counts.items(), ("total", total)]:
        print(f"{kind:<13}" + "".join(f"{counts[c]:>12}" for c in columns))
    print("violations:", ", ".join(f"{what} {n}" for what, n in soak.violations.items()) or "none")
    for example in soak.examples:
        print("  " + example)
    for label, chosen in (
        ("all", [latency for latency, _, _ in soak.latencies]),
        ("outside faults", [lat for lat, sent, got in soak.latencies if not soak.duringFault(sent, got)]),
    ):
        ms = sorted(chosen) or [0.0]
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        print(f"well-behaved latency, {label}: {len(chosen)} replies, max {ms[-1]:.3f} s, p99 {p99:.3f} s")
    start, peak, end = (size / 1024 for size in (soak.rss[0], max(soak.rss), soak.rss[-1]))
    print(f"server RSS: start {start:.1f} MiB, peak {peak:.1f} MiB, end {end:.1f} MiB")
    dirty = [line for line in soak.daemon.text().splitlines() if "Traceback" in line or "Unhandled" in line]
    print("daemon log:", "contains Traceback/Unhandled" if dirty else "clean (no Traceback, no Unhandled)")
    for line in dirty[:5]:
        print("  " + line)
    print("daemon exit:", "killed, 8 s after SIGTERM" if status is None else f"{status} (expected -15)")
    clean = not soak.violations and not dirty and status == -signal.SIGTERM
    print("result:", "PASS" if clean else "FAIL")
    return clean


def run(directory: str, seconds: float, clients: int, seed: int) -> bool:
    db = os.path.join(directory, "users.sqlite")
    generated = [(f"u{i:05d}", f"Name{i}", f"Fore{i}") for i in range(GENERATED)]
    tutorialDatabase(db, [*TUTORIAL_USERS, *generated, ("probe", "Probe", "Fault")])
    shutil.copyfile(db, db + ".fresh")
    daemon = Daemon(directory, "--db", db, *OPTIONS, timeout=15.0)

    def hardStop() -> None:
        print(f"soak: still running {seconds + GRACE:g} s in: killing the daemon", file=sys.stderr)
        daemon.process.kill()
        shutil.rmtree(directory, ignore_errors=True)
        os._exit(1)

    watchdog = threading.Timer(seconds + GRACE, hardStop)
    watchdog.daemon = True
    watchdog.start()
    if daemon.where is None:
        watchdog.cancel()
        daemon.process.kill()
        print("soak: the daemon did not start:\n" + daemon.text(), file=sys.stderr)
        return False
    soak = Soak(daemon, db, seconds)
    rng = random.Random(seed)  # noqa: S311 (test data, not cryptography)
    workers = [wellBehaved] * clients + [oneShot, hostile, idle, idle, burst, flood, faults]
    threads = [
        threading.Thread(target=guarded, args=(soak, w, random.Random(rng.random())), daemon=True)  # noqa: S311
        for w in workers
    ]
    for thread in threads:
        thread.start()
    while soak.pause(1.0):
        soak.rss.append(residentSize(daemon.process.pid) // 1024)
    for thread in threads:
        thread.join(max(0.0, soak.remaining() + 8.0))
        if thread.is_alive():
            soak.violation("?", "missing reply", f"{thread.name} still waiting for the daemon at the end")
    soak.rss.append(residentSize(daemon.process.pid) // 1024)
    try:
        status: int | None = daemon.stop(signal.SIGTERM, timeout=8.0)
    except subprocess.TimeoutExpired:
        daemon.process.kill()
        daemon.process.wait(5.0)
        status = None
    watchdog.cancel()
    return report(soak, status, clients, seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the clients run")
    parser.add_argument("--clients", type=int, default=4, help="how many well-behaved clients")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    args = parser.parse_args(argv)
    seed = time.time_ns() % 1_000_000 if args.seed is None else args.seed
    directory = tempfile.mkdtemp(prefix="avatard-soak-")
    try:
        return 0 if run(directory, args.seconds, args.clients, seed) else 1
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
