"""The design of the reliability model: which covariates enter, how they are transformed and
standardized, the coordinates (models, subjects) a fit is indexed by, and the likelihood cells.

A :class:`Design` is fixed by the training log and reused unchanged for every prediction:
the standardization constants are those of the training rows, never of the rows predicted.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayes_router.data.schema import covariates_present
from bayes_router.errors import InputError

#: covariate name -> (log column, transform before standardizing). Names are the
#: log's columns (with the transform in the name where it is part of the meaning).
COVARIATES: dict[str, tuple[str, str]] = {
    "log_question_chars": ("question_chars", "log"),
    "completion_tokens": ("completion_tokens", "log1p"),
    "confidence": ("confidence", "identity"),
    "latency_s": ("latency_s", "log"),
}
PRE_COVARIATES = ("log_question_chars",)
POST_COVARIATES = ("log_question_chars", "completion_tokens", "confidence", "latency_s")
#: Covariates a log may lack (the public MMLU-Pro logs hold neither); they are left out, never imputed.
OPTIONAL_COVARIATES = frozenset({"confidence", "latency_s"})


def transform(values, how: str) -> np.ndarray:
    """The transform applied before standardizing ("log", "log1p" or "identity")."""
    values = np.asarray(values, dtype=float)
    if how == "log":
        return np.log(np.maximum(values, 1e-3))
    if how == "log1p":
        return np.log1p(np.maximum(values, 0.0))
    return values


def check_log(log: pd.DataFrame, need_correct: bool) -> None:
    """Refuse a frame without the columns every stage reads (and ``correct``/``parsed`` to fit)."""
    need = ["model", "subject", "question_chars"] + (["correct", "parsed"] if need_correct else [])
    missing = [c for c in need if c not in log.columns]
    if missing:
        raise InputError(f"call log: missing columns {missing}")
    if len(log) == 0:
        raise InputError("call log: no rows to fit")


def choose_covariates(log: pd.DataFrame, stage: str) -> tuple[list[str], dict[str, str]]:
    """(covariates used, {left out: why}) for a training log; warns naming what is left out.

    The post stage lists ``parsed`` (the hurdle, not a slope) right after the token count.
    """
    present = covariates_present(log)
    used, dropped = [], {}
    for name in PRE_COVARIATES if stage == "pre" else POST_COVARIATES:
        col = COVARIATES[name][0]
        if name in OPTIONAL_COVARIATES:
            if not present[col]:
                dropped[name] = "not in the log (all null)"
                continue
            n_null = int(log[col].isna().sum())
            if n_null:
                dropped[name] = f"null in {n_null} of {len(log)} training rows (not imputed)"
                continue
        used.append(name)
    if stage == "post":
        used.insert(used.index("completion_tokens") + 1, "parsed")
    if dropped:
        warnings.warn(f"{stage}-call model: covariates left out: "
                      + "; ".join(f"{k}: {v}" for k, v in dropped.items()) + f". Used: {used}", stacklevel=4)
    return used, dropped


@dataclass(frozen=True)
class Design:
    """What the training log fixes: coordinates, covariates and their standardization.

    ``standardization``: covariate -> {"mean", "sd"} of the transformed training values.
    """

    stage: str
    models: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    covariates_used: list[str] = field(default_factory=list)
    covariates_dropped: dict[str, str] = field(default_factory=dict)
    standardization: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def slope_covariates(self) -> list[str]:
        """Covariates with a slope (``covariates_used`` minus the ``parsed`` hurdle)."""
        return [c for c in self.covariates_used if c != "parsed"]

    @classmethod
    def from_training_log(cls, stage: str, log: pd.DataFrame) -> Design:
        """The design of a fit on ``log`` (standardized over all its rows, unparsed ones included)."""
        check_log(log, need_correct=True)
        used, dropped = choose_covariates(log, stage)
        design = cls(stage, sorted(log["model"].astype(str).unique().tolist()),
                     sorted(log["subject"].astype(str).unique().tolist()), used, dropped)
        for name in design.slope_covariates:
            x = design._transformed(log, name)
            sd = float(x.std())
            design.standardization[name] = {"mean": float(x.mean()), "sd": sd if sd > 1e-12 else 1.0}
        return design

    def _transformed(self, calls: pd.DataFrame, name: str) -> np.ndarray:
        col, how = COVARIATES[name]
        if col not in calls.columns:
            raise InputError(f"calls: column '{col}' is needed by the {self.stage}-call model but missing")
        raw = pd.to_numeric(calls[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        if np.isnan(raw).any():
            raise InputError(f"calls: column '{col}' has {int(np.isnan(raw).sum())} null values; the "
                             f"{self.stage}-call model uses it and does not impute")
        return transform(raw, how)

    def matrix(self, calls: pd.DataFrame) -> np.ndarray:
        """Standardized covariates of ``calls``, shape (rows, len(slope_covariates)), training constants."""
        cols = []
        for name in self.slope_covariates:
            st = self.standardization[name]
            cols.append((self._transformed(calls, name) - st["mean"]) / st["sd"])
        return np.column_stack(cols) if cols else np.zeros((len(calls), 0))

    def codes(self, calls: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(model index, subject index) of each call in ``models`` / ``subjects``; -1 where unseen."""
        m = pd.Index(self.models).get_indexer(calls["model"].astype(str)).astype(np.int64)
        s = pd.Index(self.subjects).get_indexer(calls["subject"].astype(str)).astype(np.int64)
        return m, s


@dataclass(frozen=True)
class LikelihoodCells:
    """The observed data of the likelihood: ``y`` successes of ``trials`` calls per cell.

    Pre stage: calls with identical (model, subject, covariates) collapsed into binomial
    counts (exact sufficient statistics); post stage: one cell per parsed call (``trials`` 1).
    ``x``: (cells, covariates) standardized; ``length_bin``: the grid width used, or None.
    """

    model_idx: np.ndarray
    subject_idx: np.ndarray
    x: np.ndarray
    trials: np.ndarray
    y: np.ndarray
    length_bin: float | None = None

    def __len__(self) -> int:
        return len(self.y)

    @classmethod
    def from_training_log(cls, design: Design, log: pd.DataFrame, length_bin: float | None = None):
        X = design.matrix(log)
        rows = log
        if design.stage == "post":  # hurdle: the logistic part sees parsed calls only
            keep = log["parsed"].to_numpy(dtype=bool)
            rows, X = log[keep], X[keep]
            if len(rows) == 0:
                raise InputError("call log: no parsed call to fit the post-call model on")
        m_idx, s_idx = design.codes(rows)
        y = rows["correct"].to_numpy(dtype=np.int64)
        if design.stage == "post":
            return cls(m_idx, s_idx, X, np.ones_like(y), y)
        return cls._binomial(m_idx, s_idx, X, y, length_bin)

    @classmethod
    def _binomial(cls, m_idx, s_idx, X, y, width):
        """Collapse calls with identical (model, subject, covariates) into binomial counts.

        Exact: the Bernoulli likelihood of the calls in a cell equals the binomial likelihood of
        their count (up to a constant). With ``width`` the covariates are first rounded to that grid.
        """
        Xk = np.round(X / width) * width if width else X
        key = pd.DataFrame({"m": m_idx, "s": s_idx, **{f"x{j}": Xk[:, j] for j in range(Xk.shape[1])}})
        g = key.assign(y=y, n=1).groupby(list(key.columns), sort=True, as_index=False).sum()
        Xc = g[[f"x{j}" for j in range(Xk.shape[1])]].to_numpy(dtype=float).reshape(len(g), Xk.shape[1])
        return cls(g["m"].to_numpy(np.int64), g["s"].to_numpy(np.int64), Xc, g["n"].to_numpy(np.int64),
                   g["y"].to_numpy(np.int64), width)
