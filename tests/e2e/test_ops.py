"""
End to end: metrics over HTTP, logs under the journal, the access log, and
log files reopened on SIGHUP.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from avatard.ops.metrics import SCRAPERS
from tests.daemon import Daemon, readText, receiveLines, waitFor
from tests.helpers import TUTORIAL_REPLIES, tutorialDatabase

# Plays the journal's part: makes standard output the stream that
# JOURNAL_STREAM names, as systemd does, then runs the daemon.
AS_JOURNAL = (
    "import os, sys; s = os.fstat(1); os.environ['JOURNAL_STREAM'] = f'{s.st_dev}:{s.st_ino}'; "
    "os.execv(sys.argv[1], sys.argv[1:])"
)

_METRICS = re.compile(r"Metrics at (http://\S+/metrics)")
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def readHTTPResponse(s: socket.socket) -> bytes:
    """
    Read one HTTP response with a C{Content-Length} from C{s}.
    """
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class JournalAndMetricsTests(SynchronousTestCase):
    """
    A daemon logging to the journal, with metrics and the access log in
    its own log.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.mkdir(self.directory)
        db = tutorialDatabase(os.path.join(self.directory, "users.sqlite"))
        self.daemon = Daemon(
            self.directory,
            "--db",
            db,
            "--port",
            "tcp:0:interface=127.0.0.1",
            "--metrics",
            "tcp:0:interface=127.0.0.1",
            "--access-log",
            "-",
            launcher=[sys.executable, "-c", AS_JOURNAL],
            twistdArguments=["--logger=avatard.logs.observer"],
        )
        self.addCleanup(self.daemon.stop, signal.SIGKILL)
        self.assertTrue(waitFor(lambda: _METRICS.search(self.daemon.text())), self.daemon.text())
        match = _METRICS.search(self.daemon.text())
        assert match is not None
        self.url = match.group(1)

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(self.url, timeout=10) as response:  # noqa: S310
            text = response.read().decode("utf-8")
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def test_metricsFollowRequests(self) -> None:
        """
        Scraped over HTTP and parsed by the Prometheus client's parser:
        requests by command and result, latencies, connections, cache and
        process metrics move as requests are made; other paths are 404.
        """
        before = self.scrape()
        self.assertEqual(before["avatard_request_duration_seconds_count", ()], 0)
        with self.daemon.connect() as s:
            s.sendall(b"WHO yoen\nWHO yoen\nWHO nobody\nPING\n")
            self.assertEqual(receiveLines(s, 4).split(b"\r\n")[0] + b"\r\n", TUTORIAL_REPLIES["yoen"])
            # Scrapes within a second share one rendering: wait for the next.
            scraped = [before]

            def counted() -> bool:
                scraped.append(self.scrape())
                return scraped[-1]["avatard_request_duration_seconds_count", ()] == 4

            self.assertTrue(waitFor(counted))
            after = scraped[-1]
            self.assertEqual(after["avatard_connections_open", ()], 1)
        self.assertEqual(after["avatard_requests_total", (("command", "WHO"), ("result", "ok"))], 2)
        self.assertEqual(after["avatard_requests_total", (("command", "WHO"), ("result", "not-found"))], 1)
        self.assertEqual(after["avatard_requests_total", (("command", "PING"), ("result", "ok"))], 1)
        self.assertEqual(after["avatard_request_duration_seconds_count", ()], 4)
        self.assertEqual(after["avatard_request_duration_seconds_bucket", (("le", "+Inf"),)], 4)
        self.assertEqual(after["avatard_cache_hits_total", ()], 1)
        self.assertGreater(after["process_resident_memory_bytes", ()], 0)
        with self.assertRaises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(self.url.replace("/metrics", "/"), timeout=10)  # noqa: S310
        self.assertEqual(raised.exception.code, 404)

    def test_scrapesBeyondTheCapWait(self) -> None:
        """
        While the metrics endpoint serves as many connections as it may,
        one more is not answered, and is served once one of them closes.
        """
        host, port = self.url.split("/")[2].rsplit(":", 1)
        request = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"
        served = [socket.create_connection((host, int(port)), timeout=10) for _ in range(SCRAPERS)]
        for s in served:
            self.addCleanup(s.close)
        extra = socket.create_connection((host, int(port)), timeout=10)
        self.addCleanup(extra.close)
        extra.sendall(request + b"")
        # A served connection's scrape, and then a WHO reply, which needs
        # another turn of the daemon's loop: had the extra scrape been
        # served, its reply would have been sent by then.
        served[0].sendall(request)
        self.assertTrue(readHTTPResponse(served[0]).startswith(b"HTTP/1.1 200"))
        with self.daemon.connect() as s:
            s.sendall(b"PING\n")
            self.assertEqual(receiveLines(s, 1), b"OK pong\r\n")
        extra.setblocking(False)
        with self.assertRaises(BlockingIOError):
            extra.recv(1)
        extra.setblocking(True)
        served[1].close()
        self.assertTrue(readHTTPResponse(extra).startswith(b"HTTP/1.1 200"))

    def test_journalLinesAndAccessLog(self) -> None:
        """
        Under the journal, every line carries a priority and no timestamp
        of its own; the access log writes one sanitised line per request
        into it.
        """
        with self.daemon.connect() as s:
            s.sendall(b"WHO yoen\nWHO \x1b[2Jevil\n")
            receiveLines(s, 2)
        self.assertTrue(waitFor(lambda: "WHO bad-request" in self.daemon.text()), self.daemon.text())
        self.assertEqual(self.daemon.stop(signal.SIGTERM), -signal.SIGTERM)
        lines = self.daemon.log
        self.assertTrue(all(re.match(r"<[2-7]>\[", line) for line in lines), lines)
        self.assertFalse(any(_TIMESTAMP.search(line[line.index("] ") + 2 :]) for line in lines), lines)
        access = [line for line in lines if line.startswith("<6>[avatard.access] ")]
        self.assertEqual(len(access), 2, lines)
        self.assertRegex(
            access[0], r'^<6>\[avatard\.access\] 127\.0\.0\.1:\d+ WHO ok \d+\.\d{3}ms "WHO yoen"\n$'
        )
        self.assertIn(" WHO bad-request ", access[1])
        self.assertIn('"WHO \\x1b[2Jevil"', access[1])
        self.assertNotIn("\x1b", "".join(lines))
        self.assertTrue(any("avatard stopped after" in line for line in lines))


class HangupTests(SynchronousTestCase):
    """
    SIGHUP after a log rotation tool renamed the log files.
    """

    def test_sighupReopensTheLogAndTheAccessLog(self) -> None:
        """
        After the daemon's log file and access log are renamed, SIGHUP
        makes new lines go to new files at the old paths.
        """
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        db = tutorialDatabase(os.path.join(directory, "users.sqlite"))
        log = os.path.join(directory, "avatard.log")
        access = os.path.join(directory, "access.log")
        daemon = Daemon(
            directory,
            "--db",
            db,
            "--port",
            "tcp:0:interface=127.0.0.1",
            "--access-log",
            access,
            twistdArguments=["--logfile", log],
            timeout=0,
        )
        self.addCleanup(daemon.stop, signal.SIGKILL)

        serving = re.compile(r"serving \S+ on 127\.0\.0\.1:(\d+)")
        self.assertTrue(waitFor(lambda: serving.search(readText(log))), daemon.text())
        match = serving.search(readText(log))
        assert match is not None
        daemon.where = f"127.0.0.1:{match.group(1)}"
        with daemon.connect() as s:
            s.sendall(b"WHO yoen\n")
            receiveLines(s, 1)
            self.assertTrue(waitFor(lambda: '"WHO yoen"' in readText(access)))
            os.rename(log, log + ".1")
            os.rename(access, access + ".1")
            daemon.process.send_signal(signal.SIGHUP)
            self.assertTrue(
                waitFor(lambda: "SIGHUP: log files reopened" in readText(log)), readText(log + ".1")
            )
            s.sendall(b"WHO esteban\n")
            receiveLines(s, 1)
            self.assertTrue(waitFor(lambda: '"WHO esteban"' in readText(access)))
        self.assertEqual(daemon.stop(signal.SIGTERM), -signal.SIGTERM)
        self.assertIn('"WHO yoen"', readText(access + ".1"))
        self.assertNotIn("esteban", readText(access + ".1"))
        self.assertNotIn("yoen", readText(access))
        self.assertIn("avatard stopped after", readText(log))
        self.assertNotIn("avatard stopped", readText(log + ".1"))
        self.assertIn("serving", readText(log + ".1"))
