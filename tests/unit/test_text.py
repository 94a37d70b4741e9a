"""
L{avatard.text}: text made safe to write to a terminal or a log.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from avatard.text import quoteBytes as quoteRequest
from avatard.text import terminalSafe


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
