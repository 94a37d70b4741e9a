"""
avatard: a directory daemon that answers C{WHO <login>} over TCP with one
line describing that user, looked up in a C{users} table.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
