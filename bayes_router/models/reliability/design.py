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

from bayes_router.errors import InputError

#: covariate name -> (log column, transform before standardizing). Names are the
#: log's columns (with the transform in the name where it is part of the meaning).
COVARIATES: dict[str, tuple[str, str]] = {
    "log_question_chars": ("question_chars", "log"),
    "completion_tokens": ("completion_tokens", "log1p"),
    "confidence": ("confidence", "logit"),
    "mean_token_prob": ("mean_token_prob", "logit"),
    "decisiveness": ("decisiveness", "logit"),
    "latency_s": ("latency_s", "log"),
}
PRE_COVARIATES = ("log_question_chars",)
POST_COVARIATES = ("log_question_chars", "completion_tokens", "confidence", "mean_token_prob", "decisiveness",
                   "latency_s")
#: Covariates a log may lack (the public MMLU-Pro logs hold none of them).
OPTIONAL_COVARIATES = frozenset({"confidence", "mean_token_prob", "decisiveness", "latency_s"})
#: The model's own confidence signals, each in [0, 1]: stated confidence, mean token probability of the
#: answer, decisiveness of its wording. A log without a signal's column (the MMLU-Pro logs) simply has
#: no such covariate. Where a training call lacks one, the default (``signal_missing="indicator"``)
#: models it as missing: the value is set to the training mean of the stated values (0 once standardized)
#: and an indicator covariate ``<signal>_missing`` (raw 0/1, not standardized) gets its own per-model slope,
#: pooled like the others. Why not drop the calls or the covariate: missingness carries signal (in the
#: calibration study, Nemotron Nano 8B's parsed answers without a stated confidence are right 52% of the
#: time against 41% overall). ``"drop"`` (leave the signal out when a training call lacks it) remains for
#: comparison. Latency is a measurement, not a signal: a log missing some is left out, as before.
SIGNALS = ("confidence", "mean_token_prob", "decisiveness")
SIGNAL_MISSING = ("indicator", "drop")
MISSING_SUFFIX = "_missing"
#: Verbal signals whose exact 0 means "none stated": in the calibration study 97% of Mixtral-8x7B's (a base
#: model's) stated confidences are 0 and its parsed answers with 0 are right 10% of the time, chance on 10
#: options, against 47% with any other value; elsewhere 0 is rare (0.1-1% of a model's calls). Read as a
#: value, 0 would sit at the bottom of the logit scale with the most leverage on the slope; read as missing,
#: the indicator still learns that such answers are mostly wrong. Mean token probability is never 0.
ZERO_IS_MISSING = frozenset({"confidence", "decisiveness"})
#: Signals are clipped to this range before the logit. Stated confidence is a whole percent (0-100), so the
#: scale's ends, 1 and 100%, are clipped to 1 and 99% (logit +-4.6): "100%" is no certainty (in the study
#: Qwen3-235B is right on 94% of its "100%" answers, Qwen3-30B on 88%) and an unclipped logit would be
#: infinite. Models heap at 0.85/0.9/0.95/1.0; on the logit scale those steps are 1.2 then 1.65, close to
#: the steps of the observed accuracies' logits (Qwen3-30B: 1.07 then 1.33), while on the raw scale the
#: last step would be half the first.
SIGNAL_CLIP = (0.01, 0.99)


def transform(values, how: str) -> np.ndarray:
    """The transform applied before standardizing ("log", "log1p", "logit" of the value clipped to
    :data:`SIGNAL_CLIP`, or "identity"); NaN stays NaN."""
    values = np.asarray(values, dtype=float)
    if how == "log":
        return np.log(np.maximum(values, 1e-3))
    if how == "log1p":
        return np.log1p(np.maximum(values, 0.0))
    if how == "logit":
        v = np.clip(values, *SIGNAL_CLIP)
        return np.log(v) - np.log1p(-v)
    return values


def signal_missing_mask(calls: pd.DataFrame, name: str) -> np.ndarray:
    """Bool (rows,): the signal ``name`` is missing in each call (null, or an exact 0 where
    :data:`ZERO_IS_MISSING`); all True when the column is absent."""
    if name not in calls.columns:
        return np.ones(len(calls), dtype=bool)
    raw = pd.to_numeric(calls[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.isnan(raw) | ((raw == 0.0) if name in ZERO_IS_MISSING else False)


def check_log(log: pd.DataFrame, need_correct: bool) -> None:
    """Refuse a frame without the columns every stage reads (and ``correct``/``parsed`` to fit)."""
    need = ["model", "subject", "question_chars"] + (["correct", "parsed"] if need_correct else [])
    missing = [c for c in need if c not in log.columns]
    if missing:
        raise InputError(f"call log: missing columns {missing}")
    if len(log) == 0:
        raise InputError("call log: no rows to fit")


def _varies_within_a_model(log: pd.DataFrame, missing: np.ndarray, parsed: np.ndarray) -> bool:
    """Whether some model's parsed training calls have the signal for some calls and lack it for others.

    A missing-value indicator that is constant within every model (a provider that never returns token
    probabilities) tells nothing a model's intercept does not: its per-model slope is identified by the
    prior alone and slides against the intercept. In the calibration study's API pool (15 models, 5
    without token probabilities) that ridge left `alpha`, `mu_slope`, `sigma_slope` and `slope` at bulk
    ESS 304-355 with 2 x 2,000 draws; the worst were the indicator's slopes and those 5 models' intercepts."""
    frame = pd.DataFrame({"model": log["model"].astype(str).to_numpy()[parsed], "missing": missing[parsed]})
    return bool((frame.groupby("model")["missing"].nunique() > 1).any())


def choose_covariates(log: pd.DataFrame, stage: str, signal_missing: str = "indicator"
                      ) -> tuple[list[str], dict[str, str]]:
    """(covariates used, {left out: why}) for a training log; warns naming what is left out.

    The post stage lists ``parsed`` (the hurdle, not a slope) right after the token count, and a
    signal's missing-value indicator right after the signal (``signal_missing``: :data:`SIGNAL_MISSING`),
    unless the indicator is constant within every model (:func:`_varies_within_a_model`).
    A signal is missing where a *parsed* training call lacks it: the hurdle decides the unparsed ones.
    """
    if signal_missing not in SIGNAL_MISSING:
        raise InputError(f"signal_missing must be one of {SIGNAL_MISSING}, got {signal_missing!r}")
    parsed = log["parsed"].to_numpy(dtype=bool) if stage == "post" and "parsed" in log.columns \
        else np.ones(len(log), dtype=bool)
    used, dropped = [], {}
    for name in PRE_COVARIATES if stage == "pre" else POST_COVARIATES:
        col = COVARIATES[name][0]
        if name in SIGNALS:
            if col not in log.columns:  # a log of a source without this signal: nothing left out
                continue
            missing = signal_missing_mask(log, col)
            if missing.all():
                dropped[name] = "not in the log (all null)"
                continue
            n_missing = int((missing & parsed).sum())
            if n_missing and signal_missing == "drop":
                dropped[name] = (f"null{' or 0' if name in ZERO_IS_MISSING else ''} in {n_missing} of "
                                 f"{int(parsed.sum())} parsed training rows (signal_missing='drop')")
                continue
            used.append(name)
            if n_missing and _varies_within_a_model(log, missing, parsed):
                used.append(name + MISSING_SUFFIX)
            elif n_missing:
                dropped[name + MISSING_SUFFIX] = ("constant within every model (the signal is missing for whole "
                                                  "models only): its per-model slope would be the model's intercept")
            continue
        if name in OPTIONAL_COVARIATES:
            if col not in log.columns or not log[col].notna().any():
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
    def from_training_log(cls, stage: str, log: pd.DataFrame, signal_missing: str = "indicator") -> Design:
        """The design of a fit on ``log`` (standardized over all its rows, unparsed ones included; a
        signal over its stated values; a missing-value indicator is not standardized)."""
        check_log(log, need_correct=True)
        used, dropped = choose_covariates(log, stage, signal_missing)
        design = cls(stage, sorted(log["model"].astype(str).unique().tolist()),
                     sorted(log["subject"].astype(str).unique().tolist()), used, dropped)
        for name in design.slope_covariates:
            if name.endswith(MISSING_SUFFIX):
                design.standardization[name] = {"mean": 0.0, "sd": 1.0}
                continue
            x = design._transformed(log, name)
            x = x[~np.isnan(x)]
            sd = float(x.std())
            design.standardization[name] = {"mean": float(x.mean()), "sd": sd if sd > 1e-12 else 1.0}
        return design

    def _transformed(self, calls: pd.DataFrame, name: str) -> np.ndarray:
        """The transformed covariate (rows,); a signal is NaN where missing (:func:`signal_missing_mask`)."""
        col, how = COVARIATES[name]
        if col not in calls.columns:
            raise InputError(f"calls: column '{col}' is needed by the {self.stage}-call model but missing")
        raw = pd.to_numeric(calls[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        if name in SIGNALS:
            return np.where(signal_missing_mask(calls, col), np.nan, transform(raw, how))
        if np.isnan(raw).any():
            raise InputError(f"calls: column '{col}' has {int(np.isnan(raw).sum())} null values; the "
                             f"{self.stage}-call model uses it and does not impute")
        return transform(raw, how)

    def _signal_column(self, calls: pd.DataFrame, name: str) -> np.ndarray:
        """A signal standardized, missing values at the training mean (0); refused where a parsed call
        lacks it and the training calls never did (no indicator to carry it, and not a model that lacks it
        on every call, whose intercept carries it)."""
        x = self._transformed(calls, name)
        missing = np.isnan(x)
        parsed = calls["parsed"].to_numpy(dtype=bool) if "parsed" in calls.columns else np.ones(len(x), bool)
        carried = name + MISSING_SUFFIX in self.slope_covariates or name + MISSING_SUFFIX in self.covariates_dropped
        if (missing & parsed).any() and not carried:
            raise InputError(f"calls: column '{name}' is null{' or 0' if name in ZERO_IS_MISSING else ''} in "
                             f"{int((missing & parsed).sum())} parsed calls, but no training call lacked it, so "
                             f"the {self.stage}-call model has no estimate for a missing {name}")
        st = self.standardization[name]
        return np.where(missing, 0.0, (x - st["mean"]) / st["sd"])

    def matrix(self, calls: pd.DataFrame) -> np.ndarray:
        """Standardized covariates of ``calls``, shape (rows, len(slope_covariates)), training constants;
        a missing-value indicator is 0/1 (:data:`SIGNALS`)."""
        cols = []
        for name in self.slope_covariates:
            if name.endswith(MISSING_SUFFIX):
                cols.append(signal_missing_mask(calls, name[: -len(MISSING_SUFFIX)]).astype(float))
            elif name in SIGNALS:
                cols.append(self._signal_column(calls, name))
            else:
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
