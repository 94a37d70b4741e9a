"""
L{avatard.text}: text made safe to write to a terminal or a log.
"""

from __future__ import annotations

import json
import unicodedata

from twisted.trial.unittest import SynchronousTestCase

from avatard.text import jsonText, terminalSafe
from avatard.text import quoteBytes as quoteRequest


class TerminalSafeTests(SynchronousTestCase):
    """
    L{terminalSafe}.
    """

    def test_printableTextIsUnchanged(self) -> None:
        """
        Printable text, accents and quotes included, passes unchanged.
        """
        for text in ("Mr 'Estebán Garcia Marquez'", "Al Ghâlib", "日本語", "a\u00a0b"):
            self.assertEqual(terminalSafe(text), text)

    def test_controlsAreEscaped(self) -> None:
        """
        C0, DEL, C1, bidirectional overrides and line separators become
        visible escapes; CR and LF never survive.
        """
        self.assertEqual(
            terminalSafe("a\r\nb\x1b[31m\x7f\x9b\u202e\u2028\ud800"),
            "a\\x0d\\x0ab\\x1b[31m\\x7f\\x9b\\u202e\\u2028\\ud800",
        )


class QuoteBytesTests(SynchronousTestCase):
    """
    L{quoteRequest}: nothing a client sends reaches the log raw.
    """

    def test_plainRequestIsQuotedAsItIs(self) -> None:
        """
        Printable text is kept, in double quotes.
        """
        self.assertEqual(quoteRequest(b"WHO o'brien%_*"), '"WHO o\'brien%_*"')
        self.assertEqual(quoteRequest("WHO Estebán ☃".encode()), '"WHO Estebán ☃"')

    def test_controlsQuotesBackslashesAndBadBytesAreEscaped(self) -> None:
        """
        Control and format characters, bytes that are not UTF-8, C{"} and
        C{\\} are escaped; the result is one printable line.
        """
        self.assertEqual(
            quoteRequest(b'WHO "a\\b\x1b[2J\r\x00\xff\xc3 \xe2\x80\xae x\x7f'),
            '"WHO \\"a\\\\b\\x1b[2J\\x0d\\x00\\xff\\xc3 \\u202e x\\x7f"',
        )


class JSONTextTests(SynchronousTestCase):
    """
    L{jsonText}: compact JSON, terminal-safe through JSON's own escapes.
    """

    def test_compactAndInOrder(self) -> None:
        """
        No blank between tokens; keys in the order given; L{None} is
        C{null}.
        """
        self.assertEqual(jsonText({"b": "x", "a": None}), '{"b":"x","a":null}')

    def test_unsafeCharactersAreEscapedAndReadBack(self) -> None:
        """
        Controls (C0, DEL, C1), format characters, line and paragraph
        separators and lone surrogates are JSON escapes, which read back as
        the characters themselves; so are C{"} and C{\\}.
        """
        for text in (
            "\x00\x1b[31m\x7f\x85\x9f",
            "\u202e\u200b\ufeff\u2066",
            "\u2028\u2029",
            "\ud800",
            '"\\',
            "\U000e0001",
        ):
            written = jsonText(text)
            self.assertEqual(
                [c for c in written if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs")], [], written
            )
            self.assertTrue(written.isascii(), written)
            self.assertEqual(json.loads(written), text)

    def test_astralFormatCharacterIsASurrogatePair(self) -> None:
        """
        A format character above U+FFFF is a surrogate pair of escapes.
        """
        self.assertEqual(jsonText("\U000e0001"), '"\\udb40\\udc01"')

    def test_otherCharactersAreWrittenAsTheyAre(self) -> None:
        """
        Non-ASCII letters, symbols, astral characters, no-break spaces and
        private-use characters are written as they are, not escaped.
        """
        for text in ("Estebán", "日本語", "\U0001f600", "a\u00a0b", "\ue000", "\ufffd"):
            self.assertEqual(jsonText(text), f'"{text}"')
