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

Signals are taken as independent of each other given correctness (naive Bayes). The signals named
in the IRT configuration's ``difficulty_signals`` (none by default; see its note) also depend on the
question's difficulty: their bins are ordinal in d given y (:mod:`.evidence`; right answers to
harder questions run longer and state less confidence); the others are taken as independent of d. The signals' likelihoods
L(s | y, d) = p(s | y, d) then update the question's difficulty d:

    p(d | s_1) ∝ Normal(d; text . w, sigma) [p_1(d) L(s_1 | 1, d) + (1 - p_1(d)) L(s_1 | 0, d)],
    p_1(d) = sigmoid(ability_1 - discrimination_1 d),

and every other model's success is integrated over that posterior: a first answer that looks
wrong makes a hard question likelier, which lowers every model's chance (correlated errors
follow from the shared difficulty; no copula). Where the fit has the unanswerable class
(:mod:`.graph`), every integral is also summed over the question's two classes. The integrals:
Gauss-Hermite per posterior draw, except the second call's value, on a difficulty grid shared by the
draws (:func:`_joint_by_outcome`).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd

from bayes_router.models.irt.evidence import (
    MIN_CALLS,
    Evidence,
    OrdinalRows,
    fit_ordinal,
    signal_likelihoods,
)
from bayes_router.models.irt.prediction import ORDINARY, hermite_rule, success
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

    def _fit_signal(self, rows: pd.DataFrame, col: str, y, parsed, difficulty=None) -> dict | None:
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
        if difficulty is not None:
            ordinal = {label: fit_ordinal(bins[mask], difficulty[mask], n_bins - 1)
                       for label, mask in (("right", use & y), ("wrong", use & ~y)) if mask.sum() >= MIN_CALLS}
            if len(ordinal) == 2 and n_bins > 2:
                sig["ordinal"] = ordinal
        return sig

    @classmethod
    def fit(cls, train_log: pd.DataFrame, n_bins: int = 8, difficulty: np.ndarray | None = None,
            difficulty_signals: tuple = ()) -> SignalModel:
        """Per model: P(unparsed | wrong), and per continuous signal its (model, subject)
        standardization, quantile bin edges and bin probabilities given right and given wrong
        over parsed calls. ``difficulty`` (calls,): each training call's question difficulty
        (posterior mean); with it, the signals named in ``difficulty_signals`` also get their
        ordinal model in difficulty given right and given wrong (:mod:`.evidence`)."""
        model = cls({}, n_bins)
        names = train_log["model"].astype(str)
        for m, pos in names.groupby(names).indices.items():
            rows = train_log.iloc[pos]
            y = rows["correct"].to_numpy(dtype=bool)
            parsed = rows["parsed"].to_numpy(dtype=bool)
            wrong = ~y
            d = None if difficulty is None else np.asarray(difficulty, dtype=float)[pos]
            entry = {"p_unparsed_wrong": float(((~parsed & wrong).sum() + 1) / (wrong.sum() + 2)), "signals": {}}
            for col in CONTINUOUS_SIGNALS:
                sig = model._fit_signal(rows, col, y, parsed, d if col in difficulty_signals else None) \
                    if col in rows.columns else None
                if sig is not None:
                    entry["signals"][col] = sig
            model.params[m] = entry
        return model

    def _observed_bins(self, calls: pd.DataFrame, rows: np.ndarray, col: str, sig: dict) -> np.ndarray:
        """The bin of signal ``col`` in each of ``calls``' ``rows`` (bool mask); the last bin: missing."""
        sub = calls.loc[rows]
        x = transform(pd.to_numeric(sub[col], errors="coerce").to_numpy(dtype=float), CONTINUOUS_SIGNALS[col])
        missing = signal_missing_mask(sub, col) if col == "confidence" else np.isnan(x)
        subj = sub["subject"].astype(str).to_numpy()
        return self._bins(np.nan_to_num(self._standardize(x, subj, sig)), missing, sig)

    def ordinal_fits(self, model: str) -> dict:
        """{signal: its ordinal model in difficulty (:meth:`.evidence.OrdinalRows.from_fits`'s entry)}
        of ``model``; empty when every signal is read as independent of difficulty."""
        out = {}
        for col, sig in self.params.get(model, {"signals": {}})["signals"].items():
            if "ordinal" in sig:
                out[col] = {**sig["ordinal"], "missing": [sig["wrong"][-1], sig["right"][-1]]}
        return out

    def evidence(self, calls: pd.DataFrame) -> Evidence:
        """What each call's signals say about its correctness (:class:`.evidence.Evidence`): the log
        likelihood ratio of the signals independent of difficulty (-inf where unparsed: an unparsed
        call is wrong), and the ordinal terms of those that move with it. A model unseen in
        training, or a signal absent from ``calls``: no evidence."""
        out = np.zeros(len(calls))
        models = calls["model"].astype(str).to_numpy()
        names, codes = np.unique(models, return_inverse=True)
        dependent: dict[str, np.ndarray] = {}  # signal -> each call's observed bin
        for i, m in enumerate(names):
            if m not in self.params:
                continue
            entry, rows = self.params[m], codes == i
            out[rows] -= np.log1p(-entry["p_unparsed_wrong"])  # P(parsed | right) = 1
            for col, sig in entry["signals"].items():
                if col not in calls.columns:
                    continue
                bins = self._observed_bins(calls, rows, col, sig)
                if "ordinal" in sig:
                    dependent.setdefault(col, np.zeros(len(calls), dtype=np.int64))[rows] = bins
                else:
                    out[rows] += np.log(np.asarray(sig["right"])[bins]) - np.log(np.asarray(sig["wrong"])[bins])
        out[~calls["parsed"].to_numpy(dtype=bool)] = -np.inf
        return Evidence(out, [self._ordinal_term(col, names, codes, bins) for col, bins in dependent.items()])

    def _ordinal_term(self, col: str, names, codes: np.ndarray, bins: np.ndarray) -> tuple:
        """(OrdinalRows, observed outcome) of signal ``col`` per call; its missing bin mapped to K_max."""
        rows = self.ordinal_rows(col, names, codes)
        observed = np.where(bins == rows.n_bins, rows.cuts.shape[2] - 1, bins)  # bin K: missing
        return rows, np.where(rows.n[:, 0] > 0, observed, 0)

    def ordinal_rows(self, col: str, names, codes: np.ndarray) -> OrdinalRows:
        """:class:`.evidence.OrdinalRows` of signal ``col`` for rows of models ``names[codes]``."""
        return OrdinalRows.from_fits([self.ordinal_fits(m).get(col) for m in names]).take(codes)

    def to_json(self) -> str:
        return json.dumps({"n_bins": self.n_bins, "params": self.params})

    @classmethod
    def from_json(cls, text: str) -> SignalModel:
        data = json.loads(text)
        return cls(data["params"], data["n_bins"])


def success_given_own_signals(ab, disc, mu, sd, evidence, nodes: int, classes: tuple = ORDINARY) -> np.ndarray:
    """P(a call right | its own signals), (draws, calls): E over p(d | s) of P(right | d, s).

    ``ab``, ``disc``, ``mu``, ``sd`` (draws, calls): ability, discrimination, and the mean and sd of
    the question's difficulty before the call (sd 0 for a training question's posterior draw);
    ``evidence``: :meth:`SignalModel.evidence` of the calls (or a log ratio (calls,) of signals
    independent of difficulty); ``classes``: :func:`.prediction.question_classes`."""
    points, weights = hermite_rule(nodes)
    num, den = np.zeros_like(ab), np.zeros_like(ab)
    for t, wt in zip(points, weights, strict=True):
        d = mu + sd * t
        wrong, right = signal_likelihoods(evidence, d)  # the same for every class: once per node
        for class_weight, guess in classes:
            p = success(ab, disc, d, guess)
            num += class_weight * wt * p * right
            den += class_weight * wt * (p * right + (1.0 - p) * wrong)
    return num / den


def success_given_first(ab1, disc1, evidence1, ab2, disc2, mu, sd, nodes: int, classes: tuple = ORDINARY
                        ) -> np.ndarray:
    """P(a second call right | the first call's signals) on the same question, (draws, rows).

    Row k pairs a first call (``ab1``, ``disc1``, ``evidence1``) with a candidate second model
    (``ab2``, ``disc2``) on a question with difficulty prior (``mu``, ``sd``); all (draws, rows)
    except the evidence (as :func:`success_given_own_signals`', one per row). The first call's
    evidence reweights the difficulty nodes by p_1(d) L(s_1 | 1, d) + (1 - p_1(d)) L(s_1 | 0, d); the second model's
    success is averaged under those weights (and the question classes' weights likewise)."""
    points, weights = hermite_rule(nodes)
    num, den = np.zeros_like(ab2), np.zeros_like(ab2)
    for t, wt in zip(points, weights, strict=True):
        d = mu + sd * t
        wrong, right = signal_likelihoods(evidence1, d)  # the same for every class: once per node
        for class_weight, guess in classes:
            p1 = success(ab1, disc1, d, guess)
            evidence = class_weight * wt * (p1 * right + (1.0 - p1) * wrong)
            num += evidence * success(ab2, disc2, d, guess)
            den += evidence
    return num / den


@dataclasses.dataclass
class CallOutcomes:
    """What a candidate's call may show, per row: ``p_unparsed`` (rows,) P(unparsed | wrong);
    ``table`` (rows, outcomes, 2) P(outcome | wrong), P(outcome | right) over every combination of
    the parsed call's bins of the signals independent of difficulty (zero-padded; the factor
    P(parsed | wrong) not included); ``dependent``: :class:`.evidence.OrdinalRows` of each signal
    that moves with difficulty."""

    p_unparsed: np.ndarray
    table: np.ndarray
    dependent: list

    @classmethod
    def of(cls, signals: SignalModel, models) -> CallOutcomes:
        """The outcomes of calls to ``models`` (rows,)."""
        names, codes = np.unique(np.asarray(models, dtype=str), return_inverse=True)
        p_unparsed, tables = np.zeros(len(names)), []
        for i, m in enumerate(names):
            entry = signals.params.get(m)
            wrong, right = np.ones(1), np.ones(1)  # an unknown model: one uninformative outcome
            if entry is not None:
                p_unparsed[i] = entry["p_unparsed_wrong"]
                for sig in entry["signals"].values():
                    if "ordinal" not in sig:
                        wrong, right = np.outer(wrong, sig["wrong"]).ravel(), np.outer(right, sig["right"]).ravel()
            tables.append(np.column_stack([wrong, right]))
        table = np.zeros((len(names), max(len(t) for t in tables), 2))
        for i, t in enumerate(tables):
            table[i, :len(t)] = t
        dependent = sorted({col for m in names for col in signals.ordinal_fits(m)})
        return cls(p_unparsed[codes], table[codes], [signals.ordinal_rows(col, names, codes) for col in dependent])

    def take(self, idx) -> CallOutcomes:
        return CallOutcomes(self.p_unparsed[idx], self.table[idx], [rows.take(idx) for rows in self.dependent])


def _take(evidence, idx):
    return evidence.take(idx) if isinstance(evidence, Evidence) else evidence[idx]


def joint_correctness(ab1, disc1, evidence1, ab2, disc2, mu, sd, nodes: int, evidence2=None,
                      classes: tuple = ORDINARY) -> np.ndarray:
    """K[y1, y2] = E_theta,d[P(y1 | d) L(s1 | y1, d) P(y2 | d) L(s2 | y2, d)], (rows, 2, 2),
    unnormalized: the joint of two calls' correctness on one question with the evidence of their
    signals, the posterior draws and the difficulty nodes integrated. Arrays as
    :func:`success_given_first`; ``evidence2`` None: the second call's signals not seen yet."""
    points, weights = hermite_rule(nodes)
    K = np.zeros((ab2.shape[1], 2, 2))
    for t, wt in zip(points, weights, strict=True):
        d = mu + sd * t
        # the signals' likelihoods are the same for every class: once per node
        w1, r1 = (x.astype(np.float64) for x in signal_likelihoods(evidence1, d))
        w2, r2 = (1.0, 1.0) if evidence2 is None else (x.astype(np.float64) for x in signal_likelihoods(evidence2, d))
        for class_weight, guess in classes:
            p1 = success(ab1, disc1, d, guess).astype(np.float64)
            p2 = success(ab2, disc2, d, guess).astype(np.float64)
            for y1, a in ((0, (1.0 - p1) * w1), (1, p1 * r1)):
                a = class_weight * a
                K[:, y1, 1] += wt * (a * p2 * r2).mean(axis=0)
                K[:, y1, 0] += wt * (a * (1.0 - p2) * w2).mean(axis=0)
    return K


def _dependent_probs(dependent: list, y: int, d: np.ndarray) -> np.ndarray:
    """P(joint outcome of the signals that move with difficulty | y, d), (draws, rows, outcomes)."""
    q = np.ones(d.shape + (1,), dtype=d.dtype)
    for rows in dependent:
        p = rows.probs(y, d).astype(d.dtype)
        q = (q[:, :, :, None] * p[:, :, None, :]).reshape(d.shape + (-1,))
    return q


#: Spacing of the difficulty grid of :func:`_joint_by_outcome` (logits), at most a third of the
#: smallest prior sd. The trapezoid rule on an integrand analytic in a strip of half-width a errs
#: by about exp(-2 pi a / step): the sigmoids' poles lie pi / slope from the real axis, so for slopes
#: up to 3 (discriminations, ordinal slopes) the error is about 2e-6, and the Gaussian's far less.
GRID_STEP = 0.5
#: The grid spans every draw's and row's prior mean +- this many sds (mass outside: 2e-9).
GRID_SDS = 6.0


def _difficulty_grid(mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """A grid over every draw's and row's difficulty prior."""
    if not (sd > 0).all():
        raise ValueError("the value of a second call integrates over a new question's difficulty: sd must be > 0")
    step = min(GRID_STEP, float(sd.min()) / 3.0)
    lo, hi = float((mu - GRID_SDS * sd).min()), float((mu + GRID_SDS * sd).max())
    return np.arange(lo, hi + step, step, dtype=np.float32)


def _joint_by_outcome(ab1, disc1, evidence1, ab2, disc2, mu, sd, dependent: list, classes: tuple = ORDINARY
                      ) -> np.ndarray:
    """K4[row, y1, y2, b] = E_class,theta,d[P(y1 | d) L(s1 | y1, d) P(y2 | d) P(b | y2, d)], (rows, 2,
    2, outcomes), b the second call's joint outcome of the signals that move with difficulty.

    On a grid of d shared by all draws (not Gauss-Hermite nodes per draw), so that the signals'
    probabilities, which depend on d but not on the draw, are computed once per grid point; each
    draw weighs the grid by its Normal(mu, sd) density times the step (the trapezoid rule)."""
    grid = _difficulty_grid(mu, sd)
    step = float(grid[1] - grid[0]) if len(grid) > 1 else 1.0
    at_grid = np.broadcast_to(grid[:, None], (len(grid), ab2.shape[1]))  # (grid, rows), as d of a draw
    density = (grid - mu[:, :, None]) / sd[:, :, None]
    density *= density
    density *= -0.5
    np.exp(density, out=density)
    density *= (step / np.sqrt(2.0 * np.pi) / ab2.shape[0]) / sd[:, :, None]  # density x step, mean over draws
    wrong, right = (x.T[None] for x in signal_likelihoods(evidence1, at_grid))  # (1, rows, grid)
    M = np.zeros((ab2.shape[1], len(grid), 2, 2))
    for class_weight, guess in classes:
        weight = density * (class_weight[:, :, None] if np.ndim(class_weight) else class_weight)
        g = None if guess is None else guess[:, :, None]
        right_weight = weight * success(ab1[:, :, None], disc1[:, :, None], grid, g)
        first = ((weight - right_weight) * wrong, right_weight * right)
        p2 = np.broadcast_to(success(ab2[:, :, None], disc2[:, :, None], grid, g), weight.shape)
        for y1 in (0, 1):
            both = np.einsum("drg,drg->rg", first[y1], p2)
            M[:, :, y1, 1] += both
            M[:, :, y1, 0] += first[y1].sum(axis=0) - both
    Q = [_dependent_probs(dependent, y2, at_grid).transpose(1, 0, 2) for y2 in (0, 1)]  # (rows, grid, b)
    return np.stack([np.stack([np.einsum("rg,rgb->rb", M[:, :, y1, y2], Q[y2]) for y2 in (0, 1)], axis=1)
                     for y1 in (0, 1)], axis=1)


def _value_of_outcomes(K4: np.ndarray, outcomes: CallOutcomes) -> dict:
    """``p_first``, ``p_second`` and ``gain`` of :func:`second_call_value` from K4 (rows, 2, 2, b)."""
    K = K4.sum(axis=3)
    Z = K.sum(axis=(1, 2))
    pu = outcomes.p_unparsed
    given = np.stack([(1.0 - pu)[:, None] * outcomes.table[:, :, 0], outcomes.table[:, :, 1]], axis=1)  # (rows, y2, o)
    full = K4[:, :, :, :, None] * given[:, None, :, None, :]  # (rows, y1, y2, b, o): parsed second calls
    best = np.maximum(full[:, 1].sum(axis=1), full[:, :, 1].sum(axis=1)).sum(axis=(1, 2))
    best += K[:, 1, 0] * pu  # an unparsed second call: keep the first answer
    p_first = K[:, 1, :].sum(axis=1) / Z
    return {"p_first": p_first, "p_second": K[:, :, 1].sum(axis=1) / Z, "gain": best / Z - p_first}


def second_call_value(ab1, disc1, evidence1, ab2, disc2, mu, sd, outcomes: CallOutcomes,
                      chunk: int | None = None, classes: tuple = ORDINARY) -> dict:
    """The value of calling a second model after the first call's signals, per row (a question's
    first call paired with one candidate); arrays as :func:`success_given_first`, ``outcomes`` the
    candidates' :class:`CallOutcomes`.

    With K(y1, y2, o) = E[P(y1 | d) L(s1 | y1, d) P(y2 | d) P(o | y2, d)], o the second call's
    signal outcome, the router that calls and then answers with whichever call is likelier right
    expects

        best = sum_o max(sum_y2 K(1, y2, o), sum_y1 K(y1, 1, o)) / sum K,

    against ``p_first`` = P(y1 = 1 | s1) without the call. Returns ``p_first``, ``p_second``
    (P(y2 = 1 | s1)) and ``gain`` = best - p_first (>= 0; subtract lambda * cost for the decision),
    each (rows,). The rule ignores whether the two letters agree, which only adds information: the
    gain is a lower bound on the value of the call to a router that also reads the letters. Rows
    are taken ``chunk`` at a time (memory: a few float32 arrays of draws x chunk x grid points;
    default about 2**24 elements each)."""
    rows = ab2.shape[1]
    chunk = chunk or max(8, 2 ** 24 // (ab2.shape[0] * len(_difficulty_grid(mu, sd))))
    out = {k: np.empty(rows) for k in ("p_first", "p_second", "gain")}
    for lo in range(0, rows, chunk):
        s = slice(lo, min(lo + chunk, rows))
        part = outcomes.take(s)
        K4 = _joint_by_outcome(ab1[:, s], disc1[:, s], _take(evidence1, s), ab2[:, s], disc2[:, s], mu[:, s],
                               sd[:, s], part.dependent, classes)
        for k, v in _value_of_outcomes(K4, part).items():
            out[k][s] = v
    return out
