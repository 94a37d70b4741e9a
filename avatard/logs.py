"""
The log observer factory that C{twistd --logger=avatard.logs.observer}
names (as the shipped systemd unit does): kept at this name for the units
that use it.  It is L{avatard.ops.journal.observer}.
"""

from avatard.ops.journal import observer

__all__ = ["observer"]
