"""
The C{avatard} admin command: create a database and manage its users.

L{avatard.admin.cli} reads the command line, L{avatard.admin.commands}
runs each sub-command through the database's L{avatard.interfaces.IAdmin},
and L{avatard.admin.csvio} reads and writes users as CSV.
"""
