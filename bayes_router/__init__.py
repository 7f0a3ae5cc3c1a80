"""bayes-router: Bayesian routing between LLMs of different price and skill.

The package is laid out by domain:

* :mod:`bayes_router.data`: call logs (schema, I/O, importers, prices, tokens,
  simulated logs, the question split, the named pools);
* :mod:`bayes_router.models`: the reliability model, trust learning, calibration,
  convergence diagnostics;
* :mod:`bayes_router.policies`: routing policies behind one registry;
* :mod:`bayes_router.study`: evaluation, metrics, overview, benchmarks, figures, reports;
* :mod:`bayes_router.commands`: the ``bayes-router`` subcommands.

The names a notebook needs are exported here. They load on first use, so
``import bayes_router`` stays cheap (no PyMC, ArviZ or scikit-learn until a
model is built).
"""

from __future__ import annotations

import importlib

from bayes_router.errors import BayesRouterError, InputError, SchemaError

__version__ = "0.1.0"

#: exported name -> the module that defines it (imported on first access)
_EXPORTS = {
    "CALL_LOG_COLUMNS": "bayes_router.data.schema",
    "validate_call_log": "bayes_router.data.schema",
    "load_call_log": "bayes_router.data.io",
    "load_questions": "bayes_router.data.io",
    "write_call_log": "bayes_router.data.io",
    "write_json": "bayes_router.data.io",
    "import_mmlu_pro": "bayes_router.data.mmlu_pro",
    "import_calibration_study": "bayes_router.data.calibration_study",
    "load_prices": "bayes_router.data.prices",
    "call_cost_usd": "bayes_router.data.prices",
    "simulate_call_log": "bayes_router.data.simulate",
    "sample_questions": "bayes_router.data.split",
    "train_test_split": "bayes_router.data.split",
    "rows_for": "bayes_router.data.split",
    "pool_models": "bayes_router.data.pools",
    "pool_names": "bayes_router.data.pools",
    "resolve_models": "bayes_router.data.pools",
    "ReliabilityModel": "bayes_router.models.reliability",
    "check_fitted_on": "bayes_router.models.reliability",
    "convergence_report": "bayes_router.models.diagnostics",
    "make_policy": "bayes_router.policies",
    "evaluate": "bayes_router.study.evaluate",
    "save_figure": "bayes_router.study.figures",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bayes_router' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = ["BayesRouterError", "InputError", "SchemaError", *_EXPORTS]
