"""Subcommands of ``bayes-router``; see :mod:`bayes_router.cli`."""
