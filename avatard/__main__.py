"""
C{python -m avatard}: the admin command line.
"""

from avatard.cli import main

raise SystemExit(main())
