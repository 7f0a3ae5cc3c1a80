"""Inputs of the trust model: the reference example, ROUTERS.yaml and OUTCOMES.csv, and the
routers' beliefs and the outcomes built from a real call log, with trust learned per subject.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_router.data.io import read_csv_input
from bayes_router.errors import InputError
from bayes_router.models.trust import RouterBelief, _check_outcomes, _check_prior, trust_posterior

# ----------------------------------------------------------------------------- the reference example
REFERENCE_OUTCOMES: tuple[int, ...] = (0,) * 11 + (1,) + (0,) * 8 + (1, 1)


def reference_routers() -> list[RouterBelief]:
    """The three routers of the reference example (simple, medium, complex)."""
    return [
        RouterBelief("simple", (0.6, 0.4), (3.0, 1.0), (3.0, 5.0)),
        RouterBelief("medium", (0.7, 0.3), (3.0, 0.2), (9.0, 0.05)),
        RouterBelief("complex", (0.2, 0.8), (3.0, 0.2), (9.0, 0.05)),
    ]


def reference_example() -> tuple[list[RouterBelief], np.ndarray]:
    """(routers, outcomes) of the reference example: eleven 0s, one 1, eight 0s, two 1s."""
    return reference_routers(), np.array(REFERENCE_OUTCOMES, dtype=np.int64)


# ----------------------------------------------------------------------------- files
def load_routers_yaml(path: str | os.PathLike) -> tuple[list[RouterBelief], dict[str, float] | None]:
    """Read ROUTERS.yaml: ``routers: {NAME: [{weight, alpha, beta}, ...]}`` and optional ``prior: {NAME: P}``."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such routers file")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("routers"), Mapping) or not doc["routers"]:
        raise InputError(f"{path}: expected a top-level 'routers: {{NAME: [{{weight, alpha, beta}}, ...]}}' mapping")
    try:
        routers = [RouterBelief.from_components(str(name), comps) for name, comps in doc["routers"].items()]
        prior = doc.get("prior")
        if prior is not None:
            if not isinstance(prior, Mapping):
                raise InputError("'prior' must map router names to probabilities")
            prior = {str(k): float(v) for k, v in prior.items()}
        _check_prior(routers, prior)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: {exc}") from None
    return routers, prior


def load_outcomes_csv(path: str | os.PathLike, column: str = "y") -> np.ndarray:
    """Read OUTCOMES.csv: a column ``y`` of 0/1 (1 = the big model was needed), in ticket order."""
    path = Path(path)
    df = read_csv_input(path, "outcomes file")
    if column not in df.columns:
        raise InputError(f"{path}: column '{column}' missing (columns: {list(df.columns)})")
    col = df[column]
    if col.isna().any():
        raise InputError(f"{path}: column '{column}': empty values at rows {np.flatnonzero(col.isna())[:5].tolist()}")
    if len(col) == 0:
        raise InputError(f"{path}: column '{column}' has no rows")
    return _check_outcomes(col.to_numpy(), where=f"{path}: column '{column}'")


# ----------------------------------------------------------------------------- real logs
def outcomes_from_log(log: pd.DataFrame, small: str, big: str, question_ids=None) -> pd.DataFrame:
    """Per question: y = 1 if the small model failed where the big one succeeded, else 0.

    Returns columns question_id, subject, small_correct, big_correct, y (int64),
    sorted by question_id (the ticket order). Questions both models answered only.
    """
    for m in (small, big):
        if m not in set(log["model"].unique()):
            raise InputError(f"model '{m}' is not in the log")
    sub = log[log["model"].isin([small, big])]
    if question_ids is not None:
        sub = sub[sub["question_id"].isin(np.asarray(question_ids, dtype=np.int64))]
    wide = sub.pivot_table(index=["question_id", "subject"], columns="model", values="correct", aggfunc="first",
                           observed=True)
    wide = wide.dropna().reset_index()
    out = pd.DataFrame({
        "question_id": wide["question_id"].astype("int64"),
        "subject": wide["subject"].astype("string"),
        "small_correct": wide[small].astype(bool),
        "big_correct": wide[big].astype(bool),
    })
    out["y"] = (~out["small_correct"] & out["big_correct"]).astype("int64")
    return out.sort_values("question_id").reset_index(drop=True)


def _beta_from_mean(mean: float, strength: float) -> tuple[float, float]:
    m = float(np.clip(mean, 1e-3, 1 - 1e-3))
    return m * strength, (1 - m) * strength


def routers_from_train(train_log: pd.DataFrame, small: str, big: str, strength: float | None = None,
                       hedge_weight: float = 0.1) -> dict[str, list[RouterBelief]]:
    """Three routers' beliefs about θ per subject, from the TRAIN log only.

    - ``pooled``: the train rate of "small failed, big succeeded" over all subjects
      (a router that ignores the subject);
    - ``by-subject``: that rate within the subject (a per-subject router);
    - ``independent``: (1 − acc_small) · acc_big within the subject, the rate a router
      predicts when it treats the two models' errors as independent (they are not:
      errors correlate, so it overstates how often the big model rescues the small).

    Each main judge is Beta(1 + mean · n, 1 + (1 − mean) · n) with n the train
    questions the router's estimate rests on (all train questions for ``pooled``, the
    subject's for the others), i.e. the router's own posterior from what it saw;
    ``strength`` replaces n by a fixed pseudo-count. It gets weight 1 − ``hedge_weight``;
    a flat Beta(1, 1) judge gets ``hedge_weight`` (the router hedges against being
    wrong, so one surprising subject cannot make its trust collapse to exactly 0).
    Returns {subject: [pooled, by-subject, independent]}.
    """
    if not 0 <= hedge_weight < 1:
        raise InputError(f"hedge_weight must be in [0, 1), got {hedge_weight}")
    if strength is not None and strength <= 0:
        raise InputError(f"strength must be positive, got {strength}")
    out = outcomes_from_log(train_log, small, big)
    if out.empty:
        raise InputError("no train question answered by both models")
    pooled, n_all = out["y"].mean(), len(out)
    beliefs = {}
    for subject, g in out.groupby("subject", observed=True):
        n_subj = len(g)
        means = {
            "pooled": (pooled, n_all),
            "by-subject": (g["y"].mean(), n_subj),
            "independent": ((1 - g["small_correct"].mean()) * g["big_correct"].mean(), n_subj),
        }
        routers = []
        for name, (m, n) in means.items():
            a, b = _beta_from_mean(m, strength if strength is not None else n)
            if strength is None:
                a, b = a + 1.0, b + 1.0
            if hedge_weight > 0:
                routers.append(RouterBelief(name, (1 - hedge_weight, hedge_weight), (a, 1.0), (b, 1.0)))
            else:
                routers.append(RouterBelief(name, (1.0,), (a,), (b,)))
        beliefs[str(subject)] = routers
    return beliefs


def trust_by_subject(beliefs: Mapping[str, Sequence[RouterBelief]], test_outcomes: pd.DataFrame,
                     n_tickets: int | None = None) -> pd.DataFrame:
    """Trust learned per subject from the TEST outcomes (first ``n_tickets`` per subject if given).

    One row per subject: n, n_ones, the trust in each router, and the observed rate.
    """
    rows = []
    for subject, g in test_outcomes.groupby("subject", observed=True):
        subject = str(subject)
        if subject not in beliefs:
            continue
        y = g["y"].to_numpy()
        if n_tickets is not None:
            y = y[:n_tickets]
        post = trust_posterior(beliefs[subject], y)
        row = {"subject": subject, "n": len(y), "n_ones": int(y.sum()), "observed_rate": float(y.mean())}
        for r, t in zip(post.names, post.trust, strict=True):
            row[f"trust_{r}"] = float(t)
        for r in post.routers:
            row[f"prior_mean_{r.name}"] = r.mean
        rows.append(row)
    return pd.DataFrame(rows).set_index("subject")
