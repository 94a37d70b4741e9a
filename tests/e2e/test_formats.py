"""
End to end: the reply formats of the real C{twistd -n avatard}: C{JSON}
read back by a JSON parser whatever the database holds.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import unicodedata

from twisted.trial.unittest import SynchronousTestCase

from tests.daemon import LOG_ERRORS, Daemon, receiveLines
from tests.helpers import TUTORIAL_USERS, tutorialDatabase

HOSTILE_USERS = (
    ("escape", "\x1b[2J\x1b[31mRed\x1b[0m", "\x1b]0;owned\x07"),
    ("bidi", "\u202eevil\u202c", "\u2066iso\u2069"),
    ("zero", "zero\u200bwidth", "\ufeffbom"),
    ("lines", "line\u2028sep", "para\u2029sep"),
    ("controls", "nul\x00del\x7f", "c1\x85\x9b"),
    ("astral", "tag\U000e0001\U000e0067", "smile\U0001f600"),
    ("quotes", 'say "hi"', "back\\slash \\u0041"),
    ("newline", "CR\rLF\n", "tab\t"),
    ("ghost", None, None),
    ("blank", "", ""),
)
"""
Users whose names hold what a terminal must not see raw, quotes and
backslashes, astral characters, C{NULL} and empty columns.
"""

UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


class JSONTests(SynchronousTestCase):
    """
    C{JSON} from the real daemon on an SQLite database made as the
    tutorial made it, holding hostile names.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.mkdir(self.directory)
        self.db = tutorialDatabase(
            os.path.join(self.directory, "users.sqlite"), TUTORIAL_USERS + HOSTILE_USERS
        )
        connection = sqlite3.connect(self.db)
        # Bytes that are not UTF-8, stored as TEXT by another program.
        connection.execute("INSERT INTO users VALUES ('latin1', CAST(X'4dfc6c6c6572' AS TEXT), 'Ren\xe9')")
        connection.commit()
        connection.close()
        self.daemon = Daemon(self.directory, "--db", self.db, "--port", "tcp:0:interface=127.0.0.1")
        self.addCleanup(self.daemon.stop, signal.SIGKILL)

    def ask(self, lines: list[bytes]) -> list[bytes]:
        """
        @return: the replies to C{lines}, sent on one connection, each with
            its CRLF.
        """
        with self.daemon.connect() as s:
            s.sendall(b"".join(line + b"\n" for line in lines))
            data = receiveLines(s, len(lines))
        replies = [line + b"\r\n" for line in data.split(b"\r\n")[:-1]]
        self.assertEqual(len(replies), len(lines), data)
        return replies

    def assertSafeJSON(self, reply: bytes) -> dict[str, object]:
        """
        C{reply} is one C{OK} line of UTF-8 holding no character a terminal
        must not see raw.

        @return: the JSON object it carries, as a parser reads it.
        """
        self.assertTrue(reply.startswith(b"OK {"), reply)
        self.assertTrue(reply.endswith(b"}\r\n"), reply)
        text = reply[3:-2].decode("utf-8")
        self.assertEqual([c for c in text if unicodedata.category(c) in UNSAFE], [], reply)
        value = json.loads(text)
        self.assertIsInstance(value, dict)
        self.assertEqual(list(value), ["login", "name", "forname"], reply)
        return value  # type: ignore[no-any-return]

    def test_hostileNamesReadBack(self) -> None:
        """
        Every stored value reads back through a JSON parser, from the
        lookup and from the cache: controls, escape sequences,
        bidirectional overrides, zero-width and line-breaking characters,
        astral format characters, quotes and backslashes; a C{NULL} column
        as C{null}; and each reply is one terminal-safe line.
        """
        users = TUTORIAL_USERS + HOSTILE_USERS
        lines = [b"JSON " + login.encode() for login, _, _ in users]
        replies = self.ask(lines + lines)
        for (login, name, forname), first, again in zip(
            users, replies[: len(users)], replies[len(users) :], strict=True
        ):
            self.assertEqual(again, first)
            self.assertEqual(self.assertSafeJSON(first), {"login": login, "name": name, "forname": forname})
        self.assertFalse(any(phrase in self.daemon.text() for phrase in LOG_ERRORS), self.daemon.text())

    def test_bytesThatAreNotUTF8AreReplacementCharacters(self) -> None:
        """
        Stored bytes that are not UTF-8 read back as U+FFFD, as C{WHO}
        shows them.
        """
        js, who = self.ask([b"JSON latin1", b"WHO latin1"])
        self.assertEqual(
            self.assertSafeJSON(js), {"login": "latin1", "name": "M\ufffdller", "forname": "Ren\xe9"}
        )
        self.assertEqual(who, "OK Mr 'René M\ufffdller' is connected under 'latin1'\r\n".encode())

    def test_outcomesOtherThanFoundAreWhos(self) -> None:
        """
        A login not found, a login that breaks the rules and a wrong count
        of arguments are answered as C{WHO} answers them (the usage naming
        C{JSON}); C{HELP} lists C{JSON}.
        """
        self.assertEqual(
            self.ask([b"JSON nobody", b"json a@b", b"JSON", b"JSON a b", b"HELP"]),
            [
                b"ERR not-found no such login\r\n",
                b"ERR bad-request forwarding (user@host) is not supported\r\n",
                b"ERR bad-request usage: JSON <login>\r\n",
                b"ERR bad-request usage: JSON <login>\r\n",
                b"OK commands: WHO <login>, JSON <login>, PING, STATS, HELP, QUIT\r\n",
            ],
        )


class TemplateTests(SynchronousTestCase):
    """
    C{--template} on the real daemon: the text C{WHO} answers, or a start
    refused.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.mkdir(self.directory)
        self.db = tutorialDatabase(
            os.path.join(self.directory, "users.sqlite"),
            (*TUTORIAL_USERS, ("ghost", None, None), ("evil", "\x1b[2J", "\u202e")),
        )

    def test_customTemplateIsWhatWhoAnswers(self) -> None:
        """
        C{WHO} answers the template's text, the fields replaced (a C{NULL}
        column by nothing) and made terminal-safe; C{JSON} is unchanged.
        """
        daemon = Daemon(
            self.directory,
            *("--db", self.db, "--port", "tcp:0:interface=127.0.0.1"),
            *("--template", "{login}: {forname} {name} {{since 1998}}"),
        )
        self.addCleanup(daemon.stop, signal.SIGKILL)
        with daemon.connect() as s:
            s.sendall(b"WHO esteban\nWHO ghost\nWHO evil\nJSON yoen\n")
            self.assertEqual(
                receiveLines(s, 4),
                "OK esteban: Estebán Garcia Marquez {since 1998}\r\n".encode()
                + b"OK ghost:   {since 1998}\r\n"
                + b"OK evil: \\u202e \\x1b[2J {since 1998}\r\n"
                + b'OK {"login":"yoen","name":"Van der Veld","forname":"Yoen"}\r\n',
            )

    def test_malformedTemplateRefusesToStart(self) -> None:
        """
        A malformed template, or one with a field other than the three,
        ends the daemon before it listens, with a non-zero exit status, no
        traceback, and one line naming the problem.
        """
        for template, problem in (
            ("{name", "--template: malformed template (expected '}' before end of string)"),
            ("{name.__class__}", "--template: {name.__class__}: attribute and index access are not allowed"),
        ):
            daemon = Daemon(
                self.directory,
                *("--db", self.db, "--port", "tcp:0:interface=127.0.0.1", "--template", template),
            )
            self.assertEqual(daemon.wait(), 1, daemon.text())
            self.assertIsNone(daemon.where)
            lines = [line for line in daemon.log if "--template:" in line]
            self.assertEqual(len(lines), 1, daemon.text())
            self.assertIn(f": {problem}", lines[0])
            self.assertEqual(daemon.log[-1], lines[0])
            self.assertNotIn("Traceback", daemon.text())
