"""
What operators add around the request path: STATS and /metrics, the
access log, the journal, SIGHUP and systemd readiness.
"""
