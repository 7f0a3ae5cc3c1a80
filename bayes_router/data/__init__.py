"""Call logs and what they are made of: the schema, reading and writing, the importers of
public logs, prices and token counts, simulated logs, the one question split, and the pools.

Nothing here imports PyMC or ArviZ: loading a log stays cheap.
"""
