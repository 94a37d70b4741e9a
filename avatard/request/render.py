"""
How an avatar is rendered in a C{WHO} reply: the original tutorial's
sentence (L{ClassicRenderer}), or the text of C{--template}
(L{TemplateRenderer}).
"""

from __future__ import annotations

import string
import unicodedata

from zope.interface import implementer

from avatard.interfaces import IRenderer
from avatard.model import COLUMNS, Avatar
from avatard.text import UNSAFE_CATEGORIES, terminalSafe

DEFAULT_TEMPLATE = "Mr '{forname} {name}' is connected under '{login}'"
"""
The template of the original tutorial's sentence, which
L{ClassicRenderer} renders.
"""


@implementer(IRenderer)
class ClassicRenderer:
    """
    Renders an avatar exactly as the original C{twisted.enterprise.adbapi}
    tutorial did: C{Mr '<forname> <name>' is connected under '<login>'}; a
    C{NULL} name or forname as empty text.
    """

    def render(self, avatar: Avatar) -> str:
        return f"Mr '{avatar.forname or ''} {avatar.name or ''}' is connected under '{avatar.login}'"


class TemplateError(ValueError):
    """
    A template that cannot be rendered; its message says why, in a phrase.
    """


@implementer(IRenderer)
class TemplateRenderer:
    """
    Renders an avatar with a template: text with the fields C{{login}},
    C{{name}} and C{{forname}}, each replaced by that column's value (a
    C{NULL} column by empty text), and C{{{} and C{}}} for literal braces.

    The template is checked once, when the renderer is made, with
    C{string.Formatter().parse}: only those bare fields are allowed, and
    rendering is a plain substitution of the three values into the text
    around them.

    @ivar template: the template, as given.
    @raise TemplateError: for an empty or malformed template, a field that
        is not one of the three (positional fields, C{{}} and C{{0}},
        included), a field with a conversion, a format specification, or
        attribute or index access, or a template holding a control
        character.
    """

    def __init__(self, template: str) -> None:
        self.template = template
        self._format = _compile(template)

    def render(self, avatar: Avatar) -> str:
        return self._format.format(avatar.login, avatar.name or "", avatar.forname or "")


def _compile(template: str) -> str:
    """
    @return: C{template} as a format string of the positional fields
        C{{0}}, C{{1}} and C{{2}} alone (the L{COLUMNS}, in order), and
        literal text with its braces doubled.
    @raise TemplateError: as L{TemplateRenderer} says.
    """
    if not template:
        raise TemplateError("the template is empty")
    if any(unicodedata.category(character) in UNSAFE_CATEGORIES for character in template):
        raise TemplateError(f"the template holds a control or format character: {terminalSafe(template)}")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise TemplateError(f"malformed template ({e}); write {{{{ and }}}} for a literal brace") from None
    pieces = []
    for literal, field, spec, conversion in parsed:
        pieces.append(literal.replace("{", "{{").replace("}", "}}"))
        if field is None:
            continue
        written = (
            "{"
            + field
            + ("" if conversion is None else "!" + conversion)
            + (":" + spec if spec else "")
            + "}"
        )
        if field not in COLUMNS:
            if field == "" or field.isdigit():
                problem = "positional fields are not allowed"
            elif "." in field or "[" in field:
                problem = "attribute and index access are not allowed"
            else:
                problem = "unknown field"
            raise TemplateError(f"{written}: {problem}; the fields are {{login}}, {{name}} and {{forname}}")
        if conversion is not None:
            raise TemplateError(f"{written}: conversions are not allowed; write {{{field}}}")
        if spec:
            raise TemplateError(f"{written}: format specifications are not allowed; write {{{field}}}")
        pieces.append("{" + str(COLUMNS.index(field)) + "}")
    return "".join(pieces)


def rendererFor(template: str) -> IRenderer:
    """
    @return: the renderer of C{template}: L{ClassicRenderer} for
        L{DEFAULT_TEMPLATE}, whose sentence it renders faster, otherwise a
        L{TemplateRenderer}.
    @raise TemplateError: as L{TemplateRenderer} says.
    """
    if template == DEFAULT_TEMPLATE:
        return ClassicRenderer()
    return TemplateRenderer(template)
