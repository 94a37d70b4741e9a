"""
The one escaping policy: what avatard writes where a person reads it (a
reply on a terminal, a log line) never holds a character that could split,
forge or colour a line.

The characters escaped are those of L{UNSAFE_CATEGORIES}: controls (C0,
DEL, C1), format characters such as bidirectional overrides, line and
paragraph separators, and lone surrogates; each becomes a visible escape,
C{\\xNN} below U+0100 and C{\\uNNNN} above.  Everything else, non-ASCII
letters included, is kept as it is.  JSON (L{jsonText}) escapes the same
characters with JSON's own escapes, which give the values back.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable

UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
"""
The Unicode general categories never written raw: Cc (C0, DEL and C1
controls), Cf (format characters, such as bidirectional overrides, which
can make a line display as something it does not say), Zl and Zp (line and
paragraph separators, which some terminals break on), Cs (lone
surrogates).
"""


def escape(character: str) -> str:
    """
    @return: the visible escape of one character: C{\\x1b}, C{\\u202e}.
    """
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminalSafe(text: str) -> str:
    """
    Make text safe to print on a terminal or to write into a log line:
    every character of L{UNSAFE_CATEGORIES} is escaped.  The result never
    contains CR or LF, so it cannot split or forge a reply line.
    """
    if text.isprintable():
        return text
    return _escapeUnsafe(text, escape)


def _escapeUnsafe(text: str, escape: Callable[[str], str]) -> str:
    """
    @return: C{text} with every character of L{UNSAFE_CATEGORIES} written
        as C{escape} writes it, the others as they are.
    """
    return "".join(
        escape(character) if unicodedata.category(character) in UNSAFE_CATEGORIES else character
        for character in text
    )


def quoteBytes(line: bytes) -> str:
    """
    Quote bytes received from a client, as the access log writes them: in
    double quotes, with bytes that are not UTF-8 written C{\\xNN}, C{"} and
    C{\\} escaped with a backslash, and the characters of
    L{UNSAFE_CATEGORIES} escaped.
    """
    if line.isascii():
        text = line.decode("ascii")
        if text.isprintable() and '"' not in text and "\\" not in text:
            return f'"{text}"'
    text = line.decode("utf-8", "surrogateescape")
    out = ['"']
    for character in text:
        code = ord(character)
        if 0xDC80 <= code <= 0xDCFF:
            # A byte that is not UTF-8, as surrogateescape carries it.
            out.append(f"\\x{code - 0xDC00:02x}")
        elif character in '"\\':
            out.append("\\" + character)
        elif unicodedata.category(character) in UNSAFE_CATEGORIES:
            out.append(escape(character))
        else:
            out.append(character)
    out.append('"')
    return "".join(out)


def jsonText(value: object) -> str:
    """
    Write C{value} (text, L{None}, and lists and dicts of them) as compact
    JSON that is terminal-safe and reads back as C{value}: every character
    of L{UNSAFE_CATEGORIES} is written as a JSON escape, C{\\uNNNN} (a
    pair of them, a surrogate pair, above U+FFFF); C{"} and C{\\} are
    escaped as JSON requires; every other character, non-ASCII letters
    included, is written as it is.  The result is one line.  (Text holding
    surrogate code points, which no database read gives, may not read back
    the same: a pair of them reads back as the character they encode.)
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if text.isprintable():
        return text
    # JSON's own syntax is printable ASCII, and json.dumps escapes C0
    # controls: what is left to escape is inside strings, where an escape
    # stands for the character itself.
    return _escapeUnsafe(text, _jsonEscape)


def _jsonEscape(character: str) -> str:
    """
    @return: the JSON escape of one character: C{\\u202e}, or the surrogate
        pair C{\\udb40\\udc01} for U+E0001.
    """
    code = ord(character)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
