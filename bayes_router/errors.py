"""Exceptions the command line turns into one clear error line (never a traceback)."""


class BayesRouterError(Exception):
    """Base class of every error a user can cause with bad input or arguments."""


class SchemaError(BayesRouterError):
    """A call log that breaks the schema of DESIGN.md (names the file, column and rows)."""


class InputError(BayesRouterError):
    """An input file or argument that cannot be used (missing, unreadable, wrong shape)."""
