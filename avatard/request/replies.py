"""
The reply lines of the protocol (docs/PROTOCOL.md), as bytes ready to send.
"""

from __future__ import annotations

from avatard.text import jsonText, terminalSafe

CRLF = b"\r\n"
PONG = b"OK pong\r\n"
BYE = b"OK bye\r\n"
HELP = b"OK commands: WHO <login>, JSON <login>, PING, STATS, HELP, QUIT\r\n"
NOT_FOUND = b"ERR not-found no such login\r\n"
UNAVAILABLE = b"ERR unavailable the directory cannot be read right now, retry later\r\n"
TOO_LONG = b"ERR too-long request line too long, closing\r\n"
TIMEOUT = b"ERR timeout idle for too long, closing\r\n"
BUSY = b"ERR busy too many connections, retry later\r\n"
DENIED = b"ERR denied not allowed from this address\r\n"
RATE_LIMITED = b"ERR rate-limit too many requests, retry later\r\n"
NOT_UTF8 = b"ERR bad-request request is not valid UTF-8\r\n"
EMPTY = b"ERR bad-request empty request, try HELP\r\n"
UNKNOWN = b"ERR bad-request unknown command, try HELP\r\n"
WHO_USAGE = b"ERR bad-request usage: WHO <login>\r\n"
JSON_USAGE = b"ERR bad-request usage: JSON <login>\r\n"
NO_ARGUMENT = b"ERR bad-request this command takes no argument\r\n"


def ok(text: str) -> bytes:
    """
    @return: an C{OK} reply line carrying C{text}, made terminal-safe.
    """
    if not text.isprintable():
        # What terminalSafe would first ask, asked here: a reply of
        # printable text, the usual one, is spared the call.
        text = terminalSafe(text)
    return b"OK " + text.encode() + CRLF


def okJSON(value: object) -> bytes:
    """
    @return: an C{OK} reply line carrying C{value} as compact JSON, which
        escapes what is not terminal-safe itself (L{jsonText}): its values
        read back unchanged.
    """
    return b"OK " + jsonText(value).encode("utf-8") + CRLF


def badRequest(problem: str) -> bytes:
    """
    @return: an C{ERR bad-request} reply line explaining C{problem}.
    """
    return b"ERR bad-request " + terminalSafe(problem).encode("utf-8") + CRLF
