"""
The daemon's service tree, and the services that listen.
"""
