"""
The reply formats of the lookup path (L{avatard.interfaces.IReplyFormat}):
what C{WHO} and C{JSON} answer for a user found, a login not found, a
lookup that failed and a login that breaks the rules.
"""

from __future__ import annotations

from zope.interface import implementer

from avatard.interfaces import IRenderer, IReplyFormat
from avatard.model import Avatar
from avatard.request.replies import NOT_FOUND, UNAVAILABLE, badRequest, ok, okJSON


@implementer(IReplyFormat)
class WhoFormat:
    """
    C{WHO}: C{OK} and the avatar as the renderer writes it, made
    terminal-safe.
    """

    command = "WHO"
    notFound = NOT_FOUND
    unavailable = UNAVAILABLE

    def __init__(self, renderer: IRenderer) -> None:
        self.renderer = renderer

    def found(self, avatar: Avatar) -> bytes:
        return ok(self.renderer.render(avatar))

    def badLogin(self, problem: str) -> bytes:
        return badRequest(problem)


@implementer(IReplyFormat)
class JSONFormat:
    """
    C{JSON}: C{OK} and the user as one compact JSON object, its keys
    C{login}, C{name} and C{forname} in that order, a C{NULL} column
    C{null}; terminal-safe through JSON's own escapes (L{okJSON}), so that
    a JSON parser reads back the stored values.  Every other outcome is
    answered as C{WHO} answers it.
    """

    command = "JSON"
    notFound = NOT_FOUND
    unavailable = UNAVAILABLE

    def found(self, avatar: Avatar) -> bytes:
        return okJSON({"login": avatar.login, "name": avatar.name, "forname": avatar.forname})

    def badLogin(self, problem: str) -> bytes:
        return badRequest(problem)
