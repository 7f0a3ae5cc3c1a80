"""How much do a policy's headline numbers move when only the fits' seed changes?

A bootstrap interval over test questions says how much the numbers would move with other
questions; it says nothing of the sampler's and the learned routers' own randomness. Here the
questions and the split stay fixed (``seed``) and every fit is redone with each of ``fit_seeds``
(:func:`~bayes_router.study.evaluate.evaluate`'s ``fit_seed``); the spread of each policy's
accuracy and cost over those refits is reported beside the bootstrap interval of one of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def fit_seed_runs(log: pd.DataFrame, models: Sequence[str], fit_seeds: Sequence[int], seed: int = 0,
                  done: Mapping[int, dict] | None = None, **evaluate_kwargs) -> dict[int, dict]:
    """RESULTS.json dicts by fit seed, the split fixed by ``seed``; ``done``: results already
    computed for some fit seeds (e.g. the notebook's main evaluation), reused as they are.
    The refits sweep no frontier (only each policy's headline point is compared)."""
    from tqdm.auto import tqdm

    from bayes_router.study.evaluate import evaluate

    runs = {int(k): v for k, v in (done or {}).items()}
    todo = [int(s) for s in fit_seeds if int(s) not in runs]
    for s in tqdm(todo, desc="refits with other seeds", unit="seed", disable=not todo):
        runs[s] = evaluate(log, models, seed=seed, fit_seed=s, frontiers=False, progress=False,
                           **evaluate_kwargs)
    return {s: runs[s] for s in sorted(int(s) for s in fit_seeds)}


def fit_seed_spread(runs: Mapping[int, dict], reference_seed: int | None = None) -> pd.DataFrame:
    """Per policy: accuracy and cost per question (USD) for each fit seed, their mean, standard
    deviation and range (max - min) over seeds, beside the 95% bootstrap interval's width of the
    ``reference_seed`` run (default the first). Rows: policies present in every run."""
    seeds = sorted(runs)
    ref = runs[seeds[0] if reference_seed is None else reference_seed]["policies"]
    names = [p for p in ref if all(p in runs[s]["policies"] for s in seeds)]
    rows = []
    for p in names:
        acc = np.array([runs[s]["policies"][p]["accuracy"] for s in seeds], dtype=float)
        cost = np.array([runs[s]["policies"][p]["cost_per_question"] for s in seeds], dtype=float)
        lo, hi = ref[p]["accuracy_ci95"]
        clo, chi = ref[p]["cost_ci95"]
        rows.append({"policy": p, **{f"accuracy_seed{s}": a for s, a in zip(seeds, acc, strict=True)},
                     "accuracy_mean": acc.mean(), "accuracy_sd": acc.std(ddof=1) if len(acc) > 1 else 0.0,
                     "accuracy_range": np.ptp(acc), "accuracy_ci_width": hi - lo,
                     "cost_mean": cost.mean(), "cost_sd": cost.std(ddof=1) if len(cost) > 1 else 0.0,
                     "cost_range": np.ptp(cost), "cost_ci_width": chi - clo})
    return pd.DataFrame(rows).set_index("policy")
