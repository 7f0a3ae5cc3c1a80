"""Subcommands of ``bayes-router``; see :mod:`bayes_router.cli`."""

from __future__ import annotations


def split_names(value: str | None, what: str) -> list[str] | None:
    """A comma-separated option value as a list of names (None when the option was not given);
    an empty list is refused, naming the option ``what``."""
    from bayes_router.errors import InputError

    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise InputError(f"{what}: no names given")
    return names
