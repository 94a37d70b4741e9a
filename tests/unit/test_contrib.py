"""
The files in contrib/: systemd units and the logrotate configuration.
"""

from __future__ import annotations

import os
import shlex

from twisted.python.reflect import namedAny
from twisted.trial.unittest import SynchronousTestCase

from avatard.tap import Options
from tests.daemon import REPO

SYSTEMD = os.path.join(REPO, "contrib", "systemd")
LOGROTATE = os.path.join(REPO, "contrib", "logrotate", "avatard")


def readUnit(path: str) -> dict[str, list[tuple[str, str]]]:
    """
    Read a unit file as systemd does: sections of C{key=value} lines, a key
    possibly repeated, comments and blank lines ignored.

    @return: each section's assignments, in order.
    """
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                current = sections.setdefault(line.strip("[]"), [])
                continue
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [value for name, value in section if name == key]


class ServiceUnitTests(SynchronousTestCase):
    """
    contrib/systemd/avatard.service.
    """

    def setUp(self) -> None:
        self.unit = readUnit(os.path.join(SYSTEMD, "avatard.service"))
        self.service = self.unit["Service"]

    def assertSet(self, key: str, value: str) -> None:
        self.assertEqual(values(self.service, key), [value], key)

    def test_notifyAndRestart(self) -> None:
        """
        C{Type=notify}, a restart policy, a reload that sends SIGHUP.
        """
        self.assertSet("Type", "notify")
        self.assertSet("NotifyAccess", "main")
        self.assertSet("Restart", "on-failure")
        self.assertSet("ExecReload", "/bin/kill -HUP $MAINPID")
        self.assertIn("avatard.socket", values(self.unit["Unit"], "Requires"))

    def test_stopGoesThroughTheMainProcess(self) -> None:
        """
        C{KillMode=mixed}: SIGTERM to twistd alone, which stops its workers
        itself (C{--workers}); SIGKILL to every process left at the end.
        """
        self.assertSet("KillMode", "mixed")

    def test_sandbox(self) -> None:
        """
        A non-root user, no privileges or capabilities, a read-only file
        system with the database's directory read-only, a private /tmp.
        """
        [user] = values(self.service, "User")
        self.assertNotIn(user, ("root", "0", ""))
        for key, value in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("PrivateTmp", "yes"),
            ("CapabilityBoundingSet", ""),
            ("AmbientCapabilities", ""),
            ("ReadOnlyPaths", "/var/lib/avatard"),
            ("ProtectHome", "yes"),
        ]:
            self.assertSet(key, value)
        self.assertNotIn("ReadWritePaths", [key for key, _ in self.service])

    def test_execStartIsAValidCommandLine(self) -> None:
        """
        C{ExecStart} runs twistd in the foreground with the journal-aware
        logger, on the socket systemd passes, and avatard accepts its
        options.
        """
        [execStart] = values(self.service, "ExecStart")
        argv = shlex.split(execStart)
        self.assertEqual(os.path.basename(argv[0]), "twistd")
        split = argv.index("avatard")
        twistdOptions, avatardOptions = argv[1:split], argv[split + 1 :]
        self.assertIn("--nodaemon", twistdOptions)
        [logger] = [option.split("=", 1)[1] for option in twistdOptions if option.startswith("--logger=")]
        self.assertTrue(callable(namedAny(logger)))
        options = Options()
        options.parseOptions(avatardOptions)
        self.assertEqual(options["port"], ["systemd:domain=INET:index=0"])
        self.assertEqual(options["db"], "/var/lib/avatard/users.sqlite")

    def test_socketUnit(self) -> None:
        """
        The socket unit listens on a stream socket and activates the
        service.
        """
        socket = readUnit(os.path.join(SYSTEMD, "avatard.socket"))["Socket"]
        self.assertEqual(values(socket, "ListenStream"), ["127.0.0.1:8787"])
        self.assertEqual(values(socket, "Service"), ["avatard.service"])


class LogrotateTests(SynchronousTestCase):
    """
    contrib/logrotate/avatard.
    """

    def test_reloadsAfterRotation(self) -> None:
        """
        Rotation renames the files, then reloads the service (SIGHUP),
        once for all of them.
        """
        with open(LOGROTATE, encoding="utf-8") as f:
            text = f.read()
        self.assertIn("/var/log/avatard/*.log {", text)
        self.assertIn("sharedscripts", text)
        self.assertIn("systemctl reload avatard.service", text)
        self.assertNotIn("copytruncate", text)


class FingerUnitTests(SynchronousTestCase):
    """
    contrib/systemd/avatard-finger.socket and the drop-in that serves it.
    """

    def setUp(self) -> None:
        self.socket = readUnit(os.path.join(SYSTEMD, "avatard-finger.socket"))["Socket"]
        self.dropIn = readUnit(os.path.join(SYSTEMD, "avatard.service.d", "finger.conf"))

    def test_socketBindsPort79ForTheService(self) -> None:
        """
        systemd binds port 79 on loopback and hands it to avatard.service,
        named C{finger}.
        """
        self.assertEqual(values(self.socket, "ListenStream"), ["127.0.0.1:79"])
        self.assertEqual(values(self.socket, "Service"), ["avatard.service"])
        self.assertEqual(values(self.socket, "FileDescriptorName"), ["finger"])

    def test_dropInServesBothSocketsByName(self) -> None:
        """
        The drop-in hands both sockets to the service, clears the unit's
        C{ExecStart} and serves each socket by the name its unit gives it:
        WHO on avatard.socket's, finger on avatard-finger.socket's.
        """
        service = self.dropIn["Service"]
        self.assertEqual(values(service, "Sockets"), ["avatard.socket avatard-finger.socket"])
        self.assertEqual(values(self.dropIn["Unit"], "Requires"), ["avatard-finger.socket"])
        empty, execStart = values(service, "ExecStart")
        self.assertEqual(empty, "")
        argv = shlex.split(execStart)
        options = Options()
        options.parseOptions(argv[argv.index("avatard") + 1 :])
        whoSocket = readUnit(os.path.join(SYSTEMD, "avatard.socket"))["Socket"]
        [whoName] = values(whoSocket, "FileDescriptorName")
        [fingerName] = values(self.socket, "FileDescriptorName")
        self.assertEqual(options["port"], [f"systemd:domain=INET:name={whoName}"])
        self.assertEqual(options["finger"], [f"systemd:domain=INET:name={fingerName}"])
        [unitExecStart] = values(readUnit(os.path.join(SYSTEMD, "avatard.service"))["Service"], "ExecStart")
        self.assertEqual(argv[: argv.index("--port")], shlex.split(unitExecStart)[: argv.index("--port")])
