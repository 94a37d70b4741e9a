"""
C{python -m avatard}: the admin command line.
"""

from avatard.admin.cli import main

raise SystemExit(main())
