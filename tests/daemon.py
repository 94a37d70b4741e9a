"""
Run the real C{twistd -n avatard} as a subprocess, for end-to-end tests.
"""

from __future__ import annotations

import os
import pwd
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress

from twisted.trial.unittest import SkipTest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LOG_ERRORS = (
    "Traceback",
    "Unhandled",
    "Connection close failed",
    "ProgrammingError",
    "AlreadyQuit",
    "Rollback failed",
    "CRITICAL",
    "[ERROR]",
    "#error]",
    "#critical]",
    "Unable to write to plugin cache",
)
"""
What a clean log never says.
"""

_SERVING = re.compile(r"avatard \S+ serving (?P<database>\S+) on (?P<where>[^(]+?)(?: \(.*)?$")


def twistdCommand() -> list[str]:
    """
    @return: the command that runs this environment's C{twistd}.
    """
    script = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.path.exists(script):
        return [script]
    found = shutil.which("twistd")
    return [found] if found else [sys.executable, "-m", "twisted"]


def environment(fromSource: bool = True) -> dict[str, str]:
    """
    @param fromSource: load avatard from this source tree, whatever is
        installed; otherwise only what is installed is used (no
        C{PYTHONPATH}).
    @return: the environment C{twistd} runs in.
    """
    env = dict(os.environ)
    if fromSource:
        env["PYTHONPATH"] = os.pathsep.join([REPO, *filter(None, [env.get("PYTHONPATH")])])
    else:
        env.pop("PYTHONPATH", None)
    return env


def runPython(script: str, *argv: str, env: Mapping[str, str], cwd: str | None = None) -> str:
    """
    Run C{script} in a new interpreter of this environment.

    @return: what it wrote on standard output.
    @raise AssertionError: it failed; the message is its standard error.
    """
    result = subprocess.run(
        [sys.executable, "-c", script, *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"exit status {result.returncode}:\n{result.stderr}")
    return result.stdout


def writePluginCaches(env: Mapping[str, str]) -> None:
    """
    Run C{twistd --help} as this process's user, as the install steps do:
    it writes Twisted's plugin cache (C{dropin.cache}) in every plugin
    directory that C{env} puts on the path, so that a daemon run as a user
    who cannot write them finds them complete and logs nothing about them.
    """
    subprocess.run(
        [*twistdCommand(), "--help"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=True,
        timeout=120,
    )


def nobodyLauncher() -> list[str]:
    """
    @return: a launcher (see L{Daemon}) that runs its command as C{nobody},
        with no supplementary group.
    @raise SkipTest: when this process cannot switch user (it is not root),
        or C{setpriv} is missing.

    The command keeps one capability, C{CAP_DAC_READ_SEARCH}: the test
    environment's interpreter may be where only root can look (a Python
    built under C{/root}, of mode 0700), which makes C{subprocess}'s own
    C{user=} fail to run it at all.  That capability lets the command read
    files and search directories whatever their modes, and nothing more:
    every write it attempts is still checked against C{nobody}, and writes
    are what the tests run this way are about.
    """
    if os.geteuid() != 0:
        raise SkipTest("switching to another user needs root; these tests run as a user who cannot")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise SkipTest("running a command as another user needs setpriv (util-linux)")
    user = pwd.getpwnam("nobody")
    return [
        setpriv,
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--clear-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
    ]


class Daemon:
    """
    One C{twistd -n avatard} process, its log collected as it runs.

    @ivar log: every line it has written so far (standard output and error).
    @ivar where: where it listens, as its start-up line says (C{host:port}
        or C{unix:path}); the first listener, when it has several.
    @ivar addresses: where each of its listeners listens, in order.
    """

    def __init__(
        self,
        directory: str,
        *arguments: str,
        timeout: float = 30.0,
        launcher: Sequence[str] = (),
        twistdArguments: Sequence[str] = (),
        extraEnvironment: Mapping[str, str] | None = None,
        passFds: Sequence[int] = (),
        fromSource: bool = True,
    ) -> None:
        """
        @param launcher: a command that runs C{twistd} (given as its
            arguments), as systemd would.
        @param twistdArguments: options of C{twistd} itself.
        @param extraEnvironment: variables added to the environment.
        @param passFds: descriptors the process inherits.
        @param fromSource: run avatard from this source tree; otherwise the
            installed package alone (see L{environment}).
        """
        self.log: list[str] = []
        self.where: str | None = None
        self.addresses: list[str] = []
        self._started = threading.Event()
        self.process = subprocess.Popen(
            [
                *launcher,
                *twistdCommand(),
                "--nodaemon",
                "--pidfile=",
                *twistdArguments,
                "avatard",
                *arguments,
            ],
            cwd=directory,
            env={**environment(fromSource), **(extraEnvironment or {})},
            pass_fds=passFds,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._started.wait(timeout)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)
            match = _SERVING.search(line)
            if match:
                self.addresses = match.group("where").split(", ")
                self.where = self.addresses[0]
                self._started.set()
        self._started.set()

    @property
    def port(self) -> int:
        assert self.where is not None, "".join(self.log)
        return int(self.where.rsplit(":", 1)[1])

    def connect(self, timeout: float = 10.0) -> socket.socket:
        """
        @return: a socket connected to the daemon.
        """
        assert self.where is not None, "the daemon did not start:\n" + "".join(self.log)
        if self.where.startswith("unix:"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(self.where[len("unix:") :])
            return s
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """
        Signal the daemon and wait for it to exit.

        @return: its exit status, as L{subprocess.Popen.returncode}.
        """
        if self.process.poll() is None:
            self.process.send_signal(sig)
        status = self.process.wait(timeout)
        self._reader.join(timeout)
        return status

    def wait(self, timeout: float = 30.0) -> int:
        status = self.process.wait(timeout)
        self._reader.join(timeout)
        return status

    def text(self) -> str:
        return "".join(self.log)


def receiveLines(s: socket.socket, count: int) -> bytes:
    """
    Read from C{s} until C{count} CRLF-terminated lines have arrived.
    """
    data = b""
    while data.count(b"\r\n") < count:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def receiveAll(s: socket.socket) -> bytes:
    """
    Read from C{s} until the server closes.
    """
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def readText(path: str) -> str:
    """
    @return: the text of the file at C{path}, or nothing while there is no
        such file (a log file not yet written, or just rotated away).
    """
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def waitFor(predicate: object, timeout: float = 10.0) -> bool:
    """
    Poll a condition, for things only observable from outside a process.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.02)
    return False


def residentSize(pid: int) -> int:
    """
    @return: the resident set size of process C{pid} in bytes, 0 if it is
        gone.
    """
    with suppress(OSError), open(f"/proc/{pid}/status") as f:
        return next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:")), 0)
    return 0


def clientsAtOnce(port: int, count: int, request: bytes, timeout: float = 60.0) -> ClientBurst:
    """
    Connect C{count} clients to C{port} on loopback at the same moment, each
    sending C{request} once writable, and read one reply line each.

    Raises the open-file limit as far as needed and allowed.  The sockets
    stay open: the caller closes the burst (it is a context manager).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 100), hard))
    burst = ClientBurst()
    selector = selectors.DefaultSelector()
    try:
        for _ in range(count):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            selector.register(s, selectors.EVENT_WRITE)
            burst.sockets.append(s)
        deadline = time.monotonic() + timeout
        while len(burst.replies) < count and time.monotonic() < deadline:
            for key, events in selector.select(timeout=1):
                client = key.fileobj
                assert isinstance(client, socket.socket)
                if events & selectors.EVENT_WRITE:
                    client.send(request)
                    selector.modify(client, selectors.EVENT_READ)
                else:
                    data = client.recv(4096)
                    if data.endswith(b"\r\n") or not data:
                        burst.replies[client] = data
                        selector.unregister(client)
    except BaseException:
        burst.close()
        raise
    finally:
        selector.close()
    return burst


class ClientBurst:
    """
    The clients of L{clientsAtOnce}: their sockets, and the reply each got.
    """

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.replies: dict[socket.socket, bytes] = {}

    def close(self) -> None:
        for s in self.sockets:
            s.close()

    def __enter__(self) -> ClientBurst:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
