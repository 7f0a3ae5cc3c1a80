"""The research around the library: evaluating routing policies on held-out questions,
their metrics (intervals, frontiers, AIQ), the descriptive overview of a log, benchmarks,
figures and the reproduction report.
"""
