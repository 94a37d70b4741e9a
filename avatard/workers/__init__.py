"""
C{--workers N}: one listening socket per endpoint, bound by the twistd
process, served by N worker processes that each run the daemon's whole
service tree; the twistd process supervises them as one group.
"""
