"""Probabilistic models of LLM reliability and of trust in routers, and the checks of their
posteriors: the hierarchical reliability model (pre- and post-call), the mixture-of-routers
trust model, calibration of p(correct), and convergence diagnostics.

PyMC and ArviZ are imported inside the functions that need them.
"""
