"""Exceptions for what a user can get wrong; the command line prints them as one line.

Both are ``ValueError`` subclasses, so library callers can catch them the usual way.
"""


class BayesRouterError(ValueError):
    """Base class of every error a user can cause with bad input or arguments."""


class SchemaError(BayesRouterError):
    """A call log that breaks the call-log schema (names the file, the column and a few rows)."""


class InputError(BayesRouterError):
    """An input file or argument that cannot be used (missing, unreadable, wrong shape)."""
