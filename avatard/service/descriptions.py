"""
What C{--port} and C{--metrics} name: Twisted server endpoint
descriptions, read the way the daemon needs them (a listen backlog, TLS
that answers after a client's close, the TLS extra they may need, PROXY
headers read as the client's address).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint

from avatard.protocol.proxy import ProxyHeaders, listenWithProxyHeaders, proxiedDescription
from avatard.service.endpoint import endpointProblem

DEFAULT_BACKLOG = 4096
"""
The listen backlog used when C{--port} does not set one: Twisted's own
default of 50 makes a burst of clients wait seconds for SYN retries, and a
queue shorter than a burst drops its tail whenever the daemon is busy for a
moment. The kernel caps it at C{net.core.somaxconn}.
"""


def withBacklog(description: str, backlog: int = DEFAULT_BACKLOG) -> str:
    """
    Add C{backlog=} to a listening endpoint description that takes one and
    does not set it.
    """
    kind = description.split(":", 1)[0].lower()
    if kind in ("tcp", "tcp6", "ssl", "unix") and "backlog=" not in description:
        return f"{description}:backlog={backlog}"
    return description


TLS_ENDPOINTS = ("ssl", "tls")
"""
Server endpoint types that need Twisted's TLS support: pyOpenSSL, which
the C{tls} extra installs.
"""

WRAPPER_ENDPOINTS = ("haproxy",)
"""
Server endpoint types whose arguments describe the endpoint they wrap, as
in C{haproxy:ssl:443:privateKey=key.pem}.
"""


def endpointArguments(description: str) -> list[str]:
    """
    @return: the positional arguments of an endpoint description, unescaped,
        as Twisted's parser reads them: its C{:}-separated fields, less
        those holding an unescaped C{=} (C{key=value} arguments).
    """
    arguments: list[str] = []
    field = ""
    keyword = False
    characters = iter(description)
    for character in characters:
        if character == "\\":
            field += next(characters, "")
        elif character == ":":
            if not keyword:
                arguments.append(field)
            field, keyword = "", False
        elif character == "=":
            keyword = True
        else:
            field += character
    if not keyword:
        arguments.append(field)
    return arguments


def tlsEndpoint(description: str) -> str | None:
    """
    @return: the TLS endpoint type (one of L{TLS_ENDPOINTS}) that
        C{description} listens with, itself or inside the endpoints that
        wrap it (L{WRAPPER_ENDPOINTS}); L{None} if it uses no TLS.
    """
    arguments = endpointArguments(description)
    while arguments:
        kind = arguments[0].lower()
        if kind in TLS_ENDPOINTS:
            return kind
        if kind not in WRAPPER_ENDPOINTS:
            return None
        arguments = arguments[1:]
    return None


def tlsInstalled() -> bool:
    """
    @return: whether Twisted's TLS support (pyOpenSSL) can be imported.
    """
    try:
        from OpenSSL import SSL  # noqa: F401
    except ImportError:
        return False
    return True


def listenOn(
    reactor: Any,
    option: str,
    description: str,
    answerAfterClose: bool = False,
    proxyHeaders: ProxyHeaders | None = None,
) -> IStreamServerEndpoint:
    """
    @param answerAfterClose: whether a TLS client's close (or TCP
        half-close) ends its input, to be answered before the server closes,
        as on TCP (L{avatard.protocol.tls}); otherwise TLS is Twisted's own.
    @param proxyHeaders: how a C{haproxy:} description's connections are
        read (L{avatard.protocol.proxy}): each served as the client its
        PROXY header names; without it, Twisted's C{haproxy:} is used.
    @return: the server endpoint C{description} (given as C{option})
        describes, with L{withBacklog}.
    @raise SystemExit: with one line, when it cannot be used.
    """
    listened = description
    if proxyHeaders is not None and (wrapped := proxiedDescription(description)) is not None:
        # Made first, so that it sits under TLS: HAProxy sends the header
        # before its TLS handshake.
        reactor = listenWithProxyHeaders(reactor, proxyHeaders)
        listened = wrapped
    if answerAfterClose:
        try:
            from avatard.protocol.tls import listenWithHalfCloseableTLS
        except ImportError:
            # Without the TLS extra no endpoint listens with TLS: there is
            # nothing to change.
            pass
        else:
            reactor = listenWithHalfCloseableTLS(reactor)
    try:
        endpoint: IStreamServerEndpoint = serverFromString(reactor, withBacklog(listened))
    except Exception as e:
        # Endpoint parsers raise whatever their plugin raises (ValueError,
        # KeyError, OSError for a missing certificate...): all of them mean
        # the description cannot be used.
        raise SystemExit(endpointProblem(option, description, e)) from None
    return endpoint
