"""The named model pools, defined once in ``bayes_router/pools.yaml``.

A pool is an ordered list of models, cheapest first; its last model is "the big model"
of always-big comparisons. Everything that takes a list of models (the command line's
``--models``, the notebooks' ``MODELS`` parameter, the benchmarks) also takes a pool
name, resolved here.

``python -m bayes_router.data.pools NAME`` prints a pool's models, comma-separated
(``--names`` lists the pools).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

from bayes_router.errors import InputError


@lru_cache(maxsize=1)
def _read_pools() -> dict[str, dict]:
    import yaml

    text = resources.files("bayes_router").joinpath("pools.yaml").read_text()
    pools = yaml.safe_load(text) or {}
    for name, spec in pools.items():
        models = spec.get("models") if isinstance(spec, dict) else None
        if not models or len(set(models)) != len(models):
            raise InputError(f"pools.yaml: pool {name!r} needs a list of distinct models")
    return pools


def pool_names() -> list[str]:
    """The names of the defined pools, in file order."""
    return list(_read_pools())


def pool_models(name: str) -> list[str]:
    """The models of pool ``name``, cheapest first."""
    pools = _read_pools()
    if name not in pools:
        raise InputError(f"unknown pool {name!r} (pools: {', '.join(pools)})")
    return list(pools[name]["models"])


def pool_log(name: str) -> str:
    """The stem of the call log a pool's models come from (``mmlu_pro`` -> data/logs/mmlu_pro.parquet)."""
    pool_models(name)
    return str(_read_pools()[name].get("log", "mmlu_pro"))


def resolve_models(models: str | Sequence[str]) -> list[str]:
    """A pool name, a comma-separated string of models, or a sequence of models -> a list of models.

    One name without a comma that is a pool's name is that pool; anything else is read as
    model names (a single model stays a one-model list). Duplicates are refused.
    """
    if isinstance(models, str):
        name = models.strip()
        if "," not in name and name in _read_pools():
            return pool_models(name)
        names = [m.strip() for m in name.split(",") if m.strip()]
    else:
        names = [str(m).strip() for m in models]
    if not names:
        raise InputError("models: give a pool name or at least one model")
    dup = sorted({m for m in names if names.count(m) > 1})
    if dup:
        raise InputError(f"models: listed more than once: {dup}")
    return names


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--names"]:
        print(" ".join(pool_names()))
        return 0
    if len(args) != 1:
        print("usage: python -m bayes_router.data.pools NAME | --names", file=sys.stderr)
        return 2
    try:
        print(",".join(pool_models(args[0])))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
