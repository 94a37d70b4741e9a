"""
The front-end of the WHO protocol: framing, connections, their factory
and its limits.
"""

from avatard.protocol.connection import WhoProtocol
from avatard.protocol.factory import BusyProtocol, WhoFactory

__all__ = ["BusyProtocol", "WhoFactory", "WhoProtocol"]
