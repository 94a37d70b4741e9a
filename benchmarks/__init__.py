"""
The avatard benchmark: python -m benchmarks.run (see docs/PERFORMANCE.md).
"""
