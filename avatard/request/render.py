"""
How an avatar is rendered in a C{WHO} reply.
"""

from __future__ import annotations

from zope.interface import implementer

from avatard.interfaces import IRenderer
from avatard.model import Avatar


@implementer(IRenderer)
class ClassicRenderer:
    """
    Renders an avatar exactly as the original C{twisted.enterprise.adbapi}
    tutorial did: C{Mr '<forname> <name>' is connected under '<login>'}; a
    C{NULL} name or forname as empty text.
    """

    def render(self, avatar: Avatar) -> str:
        return f"Mr '{avatar.forname or ''} {avatar.name or ''}' is connected under '{avatar.login}'"
