"""
The front-ends: the WHO protocol (framing, connections, their factory and
its limits) and finger (RFC 1288), and the connections they share.
"""

from avatard.protocol.connection import WhoProtocol
from avatard.protocol.connections import BusyProtocol, Connections
from avatard.protocol.factory import WhoFactory
from avatard.protocol.finger import FingerFactory, FingerProtocol

__all__ = ["BusyProtocol", "Connections", "FingerFactory", "FingerProtocol", "WhoFactory", "WhoProtocol"]
