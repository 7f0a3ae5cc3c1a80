"""The policy registry: one name -> one class, shared by the harness, the CLI and the notebooks.

Names (the command line and RESULTS.json use them): ``always:<model>`` for each model, ``random``, ``oracle``,
``bayes-adaptive``, ``cascade``, ``threshold``, ``ndch``, ``ndch-p``, ``mip``,
``knn``, ``mf``, ``classifier``. ``always:<model>`` is parsed into
``AlwaysPolicy(model=<model>)``.
"""

from __future__ import annotations

from bayes_router.errors import InputError
from bayes_router.policies.base import Policy, RoutingContext, TestCalls, expected_cost

REGISTRY: dict[str, type[Policy]] = {}


def register(cls: type[Policy]) -> type[Policy]:
    """Class decorator: add a policy class to REGISTRY under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no registry name")
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"policy name '{cls.name}' registered twice")
    REGISTRY[cls.name] = cls
    return cls


def make_policy(name: str, **params) -> Policy:
    """A new, unfitted policy by registry name (``always:<model>`` sets ``model``)."""
    if name.startswith("always:"):
        model = name[len("always:"):]
        if not model:
            raise InputError("policy 'always:' needs a model name, e.g. always:Meta-Llama-3_1-70B-Instruct")
        return REGISTRY["always"](model=model, **params)
    if name not in REGISTRY or name == "always":
        known = sorted(n for n in REGISTRY if n != "always") + ["always:<model>"]
        raise InputError(f"unknown policy '{name}'; known: {', '.join(known)}")
    return REGISTRY[name](**params)


#: The fixed order of default runs and reports: baselines first, then the Bayesian policy and the routers it is compared with.
CANONICAL_ORDER = ("random", "oracle", "bayes-adaptive", "cascade", "cascade-confidence", "threshold", "ndch", "ndch-p",
                   "mip", "knn", "mf", "classifier")


def default_policy_names(models: list[str]) -> list[str]:
    """Every registered policy for a pool: always:<m> for each model, then the rest in :data:`CANONICAL_ORDER`."""
    names = [f"always:{m}" for m in models]
    names += [n for n in CANONICAL_ORDER if n in REGISTRY]
    names += [n for n in REGISTRY if n != "always" and n not in names]
    return names


# Registration happens on import; these modules need only numpy/pandas at import time
# (scikit-learn, scipy.optimize and PyMC load inside fit/route).
from bayes_router.policies import adaptive, allocation, cascade, learned, simple  # noqa: E402, F401

__all__ = ["REGISTRY", "Policy", "RoutingContext", "TestCalls", "default_policy_names",
           "expected_cost", "make_policy", "register"]
