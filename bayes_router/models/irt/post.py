"""Post-call evidence for the IRT reliability model: what a call's signals say about its
correctness, and through it about the question's difficulty.

At routing time a call's correctness y is not observed; its signals are: whether a letter was
extracted (``parsed``), its completion tokens and, where the log has it, a stated confidence.
:class:`SignalModel` is a generative model of the signals given correctness, per model:

* parsed: an unparsed call is wrong (the hurdle), so P(unparsed | right) = 0 and
  P(unparsed | wrong) = pi_m (Beta(1, 1) posterior mean);
* log completion tokens (standardized within the model's subject, training constants) and the
  logit of the stated confidence: a histogram over the model's quantile bins given y, a missing
  confidence its own bin (missingness is informative: see the reliability design's signal notes).
  Bins, not a Normal given y: wrong answers that run to the token limit make heavy tails, where a
  ratio of two Normals with unequal spreads grows without bound.

Signals are taken as independent of each other and of the difficulty given correctness (a
naive-Bayes assumption; stated, not tested here). The likelihood ratio
r(s) = p(s | right) / p(s | wrong) then updates the question's difficulty d:

    p(d | s_1) ∝ Normal(d; text . w, sigma) [p_1(d) r(s_1) + 1 - p_1(d)],
    p_1(d) = sigmoid(ability_1 - discrimination_1 d),

and every other model's success is integrated over that posterior: a first answer that looks
wrong makes a hard question likelier, which lowers every model's chance (correlated errors
follow from the shared difficulty; no copula). All integrals: Gauss-Hermite per posterior draw.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from bayes_router.models.irt.prediction import hermite_rule, sigmoid
from bayes_router.models.reliability.design import signal_missing_mask, transform

#: Continuous signals: log column -> transform before standardizing.
CONTINUOUS_SIGNALS = {"completion_tokens": "log1p", "confidence": "logit"}
#: Smallest sd of a signal within a (model, subject) cell: keeps the standardization finite.
MIN_SD = 0.05


class SignalModel:
    """p(signals | correct, model), fitted on training calls (whose correctness is known).

    ``n_bins``: quantile bins of each continuous signal per model (a confidence also has a bin
    for "none stated"); bin probabilities given right and given wrong have a Dirichlet(1, ..., 1)
    prior (posterior means kept)."""

    def __init__(self, params: dict | None = None, n_bins: int = 8):
        self.params = params or {}
        self.n_bins = int(n_bins)

    @staticmethod
    def _standardize(x, subj, sig) -> np.ndarray:
        cell = np.array([sig["cells"].get(s, sig["overall"]) for s in subj]).reshape(-1, 2)
        return (x - cell[:, 0]) / cell[:, 1]

    @staticmethod
    def _bins(z, missing, sig) -> np.ndarray:
        b = np.searchsorted(np.asarray(sig["edges"]), z)
        return np.where(missing, len(sig["edges"]) + 1, b)  # the last bin: none stated

    def _fit_signal(self, rows: pd.DataFrame, col: str, y, parsed) -> dict | None:
        missing = signal_missing_mask(rows, col) if col == "confidence" else rows[col].isna().to_numpy()
        use = parsed & ~missing
        if use.sum() < 20 or y[use].all() or (~y[use]).all():
            return None
        x = transform(pd.to_numeric(rows[col], errors="coerce").to_numpy(dtype=float), CONTINUOUS_SIGNALS[col])
        subj = rows["subject"].astype(str).to_numpy()
        overall = [float(x[use].mean()), float(max(x[use].std(), MIN_SD))]
        cells = {}
        for s in np.unique(subj[use]):
            v = x[use & (subj == s)]
            cells[s] = [float(v.mean()), float(max(v.std(), MIN_SD))] if len(v) >= 10 else overall
        sig = {"cells": cells, "overall": overall}
        z = self._standardize(x, subj, sig)
        sig["edges"] = np.unique(np.quantile(z[use], np.linspace(0, 1, self.n_bins + 1)[1:-1])).tolist()
        bins = self._bins(z, missing, sig)
        n_bins = len(sig["edges"]) + 2
        for label, mask in (("right", parsed & y), ("wrong", parsed & ~y)):
            counts = np.bincount(bins[mask], minlength=n_bins) + 1.0
            sig[label] = (counts / counts.sum()).tolist()
        return sig

    @classmethod
    def fit(cls, train_log: pd.DataFrame, n_bins: int = 8) -> SignalModel:
        """Per model: P(unparsed | wrong), and per continuous signal its (model, subject)
        standardization, quantile bin edges and bin probabilities given right and given wrong
        over parsed calls."""
        model = cls({}, n_bins)
        for m, rows in train_log.groupby(train_log["model"].astype(str), observed=True):
            y = rows["correct"].to_numpy(dtype=bool)
            parsed = rows["parsed"].to_numpy(dtype=bool)
            wrong = ~y
            entry = {"p_unparsed_wrong": float(((~parsed & wrong).sum() + 1) / (wrong.sum() + 2)), "signals": {}}
            for col in CONTINUOUS_SIGNALS:
                sig = model._fit_signal(rows, col, y, parsed) if col in rows.columns else None
                if sig is not None:
                    entry["signals"][col] = sig
            model.params[m] = entry
        return model

    def log_likelihood_ratio(self, calls: pd.DataFrame) -> np.ndarray:
        """log p(signals | right) - log p(signals | wrong) of each call, (calls,); -inf where unparsed
        (an unparsed call is wrong). A model unseen in training: 0 (no evidence)."""
        out = np.zeros(len(calls))
        parsed = calls["parsed"].to_numpy(dtype=bool)
        models = calls["model"].astype(str).to_numpy()
        subj = calls["subject"].astype(str).to_numpy()
        for m in np.unique(models):
            if m not in self.params:
                continue
            entry, rows = self.params[m], models == m
            out[rows] -= np.log1p(-entry["p_unparsed_wrong"])  # P(parsed | right) = 1
            for col, sig in entry["signals"].items():
                if col not in calls.columns:
                    continue
                sub = calls.loc[rows]
                x = transform(pd.to_numeric(sub[col], errors="coerce").to_numpy(dtype=float), CONTINUOUS_SIGNALS[col])
                missing = signal_missing_mask(sub, col) if col == "confidence" else np.isnan(x)
                bins = self._bins(np.nan_to_num(self._standardize(x, subj[rows], sig)), missing, sig)
                out[np.flatnonzero(rows)] += np.log(np.asarray(sig["right"])[bins]) \
                    - np.log(np.asarray(sig["wrong"])[bins])
        out[~parsed] = -np.inf
        return out

    def to_json(self) -> str:
        return json.dumps({"n_bins": self.n_bins, "params": self.params})

    @classmethod
    def from_json(cls, text: str) -> SignalModel:
        data = json.loads(text)
        return cls(data["params"], data["n_bins"])


def success_given_own_signals(ab, disc, mu, sd, log_ratio, nodes: int) -> np.ndarray:
    """P(a call right | its own signals), (draws, calls): E over p(d | s) of P(right | d, s).

    ``ab``, ``disc``, ``mu``, ``sd`` (draws, calls): ability, discrimination, and the mean and sd of
    the question's difficulty before the call (sd 0 for a training question's posterior draw);
    ``log_ratio`` (calls,): :meth:`SignalModel.log_likelihood_ratio`."""
    points, weights = hermite_rule(nodes)
    r = np.exp(np.minimum(log_ratio, 50.0)).astype(np.float32)[None, :]  # exp(-inf) = 0: unparsed
    num, den = np.zeros_like(ab), np.zeros_like(ab)
    for t, wt in zip(points, weights, strict=True):
        p = sigmoid(ab - disc * (mu + sd * t))
        num += wt * p * r
        den += wt * (p * r + (1.0 - p))
    return num / den


def success_given_first(ab1, disc1, log_ratio1, ab2, disc2, mu, sd, nodes: int) -> np.ndarray:
    """P(a second call right | the first call's signals) on the same question, (draws, rows).

    Row k pairs a first call (``ab1``, ``disc1``, ``log_ratio1``) with a candidate second model
    (``ab2``, ``disc2``) on a question with difficulty prior (``mu``, ``sd``); all (draws, rows)
    except ``log_ratio1`` (rows,). The first call's evidence reweights the difficulty nodes by
    p_1(d) r + 1 - p_1(d); the second model's success is averaged under those weights."""
    points, weights = hermite_rule(nodes)
    r = np.exp(np.minimum(log_ratio1, 50.0)).astype(np.float32)[None, :]
    num, den = np.zeros_like(ab2), np.zeros_like(ab2)
    for t, wt in zip(points, weights, strict=True):
        d = mu + sd * t
        p1 = sigmoid(ab1 - disc1 * d)
        evidence = wt * (p1 * r + (1.0 - p1))
        num += evidence * sigmoid(ab2 - disc2 * d)
        den += evidence
    return num / den


def outcome_table(signals: SignalModel, model: str) -> np.ndarray:
    """P(signal outcome | wrong), P(signal outcome | right) of a call to ``model``, (outcomes, 2): the
    outcomes are "unparsed" then every combination of the model's signal bins (parsed)."""
    entry = signals.params.get(model)
    if entry is None:
        return np.array([[0.0, 0.0], [1.0, 1.0]])  # an unknown model: one uninformative outcome
    wrong, right = np.array([1.0 - entry["p_unparsed_wrong"]]), np.array([1.0])
    for sig in entry["signals"].values():
        wrong = np.outer(wrong, sig["wrong"]).ravel()
        right = np.outer(right, sig["right"]).ravel()
    return np.vstack([[entry["p_unparsed_wrong"], 0.0], np.column_stack([wrong, right])])


def joint_correctness(ab1, disc1, log_ratio1, ab2, disc2, mu, sd, nodes: int,
                      log_ratio2: np.ndarray | None = None) -> np.ndarray:
    """K[y1, y2] = E_theta,d[P(y1 | d) L(s1 | y1) P(y2 | d) L(s2 | y2)], (rows, 2, 2), unnormalized:
    the joint of two calls' correctness on one question with the evidence of their signals, the
    posterior draws and the difficulty nodes integrated. Arrays as :func:`success_given_first`;
    ``log_ratio2`` None: the second call's signals not seen yet (L(s2 | y2) = 1)."""
    points, weights = hermite_rule(nodes)
    r1 = np.exp(np.minimum(log_ratio1, 50.0)).astype(np.float64)[None, :]  # exp(-inf) = 0: unparsed
    r2 = 1.0 if log_ratio2 is None else np.exp(np.minimum(log_ratio2, 50.0)).astype(np.float64)[None, :]
    K = np.zeros((ab2.shape[1], 2, 2))
    for t, wt in zip(points, weights, strict=True):
        d = mu + sd * t
        p1 = sigmoid(ab1 - disc1 * d).astype(np.float64)
        p2 = sigmoid(ab2 - disc2 * d).astype(np.float64)
        for y1, a in ((0, 1.0 - p1), (1, p1 * r1)):
            K[:, y1, 1] += wt * (a * p2 * r2).mean(axis=0)
            K[:, y1, 0] += wt * (a * (1.0 - p2)).mean(axis=0)
    return K


def second_call_value(ab1, disc1, log_ratio1, ab2, disc2, mu, sd, outcomes: np.ndarray, nodes: int) -> dict:
    """The value of calling a second model after the first call's signals, per row (a question's
    first call paired with one candidate); arrays as :func:`success_given_first`, ``outcomes``
    (rows, outcomes, 2) from :func:`outcome_table`.

    With K from :func:`joint_correctness` and the second call's signal outcome o having P(o | y2),
    the router that calls and then answers with whichever call is likelier right expects

        best = sum_o max(P(y1 = 1, o | s1), P(y2 = 1, o | s1)),

    against ``p_first`` = P(y1 = 1 | s1) without the call. Returns ``p_first``, ``p_second``
    (P(y2 = 1 | s1)) and ``gain`` = best - p_first (>= 0; subtract lambda * cost for the decision),
    each (rows,). The rule ignores whether the two letters agree, which only adds information: the
    gain is a lower bound on the value of the call to a router that also reads the letters."""
    K = joint_correctness(ab1, disc1, log_ratio1, ab2, disc2, mu, sd, nodes)
    Z = K.sum(axis=(1, 2))
    first_right = K[:, 1, :, None] * outcomes.transpose(0, 2, 1)  # (rows, y2, outcome): y1 = 1
    second_right = K[:, :, 1, None] * outcomes[:, None, :, 1]  # (rows, y1, outcome): y2 = 1
    best = np.maximum(first_right.sum(axis=1), second_right.sum(axis=1)).sum(axis=1) / Z
    p_first = K[:, 1, :].sum(axis=1) / Z
    return {"p_first": p_first, "p_second": K[:, :, 1].sum(axis=1) / Z, "gain": best - p_first}
