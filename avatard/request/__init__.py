"""
What a request means: the command table, the WHO lookup path, the reply
cache, coalesced lookups and rendering.
"""
