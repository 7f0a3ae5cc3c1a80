"""bayes-router: Bayesian routing between LLMs of different price and skill.

The public API mirrors the command line; heavy libraries (PyMC, ArviZ,
scikit-learn) load only when the part that needs them is used.
"""

from __future__ import annotations

from .errors import BayesRouterError, InputError, SchemaError
from .io import load_call_log, load_questions, write_call_log
from .schema import CALL_LOG_COLUMNS, validate_call_log

__version__ = "0.1.0"


def import_mmlu_pro(src, prices=None, few_shot_overhead=None, progress=False):
    """Import public MMLU-Pro outputs: returns (call log, question texts). See :mod:`bayes_router.importer`."""
    from .importer import import_mmlu_pro as _imp
    from .tokens import DEFAULT_FEW_SHOT_OVERHEAD

    overhead = DEFAULT_FEW_SHOT_OVERHEAD if few_shot_overhead is None else few_shot_overhead
    return _imp(src, prices=prices, few_shot_overhead=overhead, progress=progress)


__all__ = [
    "BayesRouterError", "InputError", "SchemaError", "CALL_LOG_COLUMNS",
    "import_mmlu_pro", "load_call_log", "load_questions", "validate_call_log", "write_call_log",
]
