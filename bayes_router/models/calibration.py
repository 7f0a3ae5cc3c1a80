"""Calibration of predicted probabilities of correctness: metrics, reliability diagrams, recalibration.

A predictor of p(correct) is *calibrated* when, among calls given probability p,
a fraction p is correct. Everything here takes ``y`` (shape (n,), 0/1 or bool:
the call was correct) and ``p`` (shape (n,), predicted P(correct) in [0, 1]).

Metrics
    :func:`expected_calibration_error` (ECE, equal-width or equal-mass bins),
    :func:`maximum_calibration_error` (MCE), :func:`brier_score`, :func:`log_loss`,
    all at once with bootstrap intervals in :func:`calibration_metrics`.
Reliability diagrams
    :func:`reliability_table` (per bin: count, mean predicted, observed rate with a
    Jeffreys 95% interval) and :func:`plot_reliability_diagram` (takes and returns axes).
Recalibrators (fit on a calibration split, applied to held-out predictions)
    :class:`TemperatureScaling` (p' = σ(logit p / T), one T by maximum likelihood)
    and :class:`HistogramBucketing` (each bucket of p mapped to the success rate of
    its calibration examples). Both are deterministic: no ``random_state``.
The study
    :func:`calibration_study`: the scikit-learn ``classifier`` baseline and the
    Bayesian reliability model's posterior predictive (pre- and post-call), raw and
    recalibrated, per model, on held-out questions of THE split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from bayes_router.errors import InputError
from bayes_router.models.diagnostics import convergence_report

STRATEGIES = ("uniform", "quantile")  # equal-width, equal-mass bins
_EPS = 1e-12


def _check_yp(y, p) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    p = np.asarray(p, dtype=float)
    if y.ndim != 1 or p.ndim != 1 or len(y) != len(p):
        raise InputError(f"y and p must be 1-d of equal length, got shapes {y.shape} and {p.shape}")
    if len(y) == 0:
        raise InputError("y and p are empty")
    if y.dtype != bool and not np.all(np.isin(y, (0, 1))):
        raise InputError("y must be 0/1 or bool")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise InputError("p must be probabilities in [0, 1]")
    return y.astype(float), p


def bin_edges(p, n_bins: int = 10, strategy: str = "uniform") -> np.ndarray:
    """Bin edges on [0, 1], shape (n_bins + 1,) or fewer for equal-mass bins with tied p.

    ``strategy="uniform"``: equal-width bins; ``"quantile"``: equal-mass bins (edges at
    quantiles of ``p``; duplicate edges from ties are merged).
    """
    if strategy not in STRATEGIES:
        raise InputError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if n_bins < 1:
        raise InputError(f"n_bins must be at least 1, got {n_bins}")
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, n_bins + 1)
    edges = np.quantile(np.asarray(p, dtype=float), np.linspace(0.0, 1.0, n_bins + 1))
    edges[0], edges[-1] = 0.0, 1.0
    return np.unique(edges)


def bin_index(p, edges: np.ndarray) -> np.ndarray:
    """Bin of each p, shape (n,): bins are [e_i, e_{i+1}), the last one closed at 1."""
    return np.clip(np.searchsorted(edges, np.asarray(p, dtype=float), side="right") - 1, 0, len(edges) - 2)


def _bin_stats(y: np.ndarray, p: np.ndarray, edges: np.ndarray):
    """(count, successes, sum of p) per bin, each shape (bins,)."""
    b = bin_index(p, edges)
    nb = len(edges) - 1
    return (np.bincount(b, minlength=nb).astype(float), np.bincount(b, weights=y, minlength=nb),
            np.bincount(b, weights=p, minlength=nb))


def _gaps(y: np.ndarray, p: np.ndarray, n_bins: int, strategy: str) -> tuple[np.ndarray, np.ndarray]:
    """(count, |observed − predicted|) of the non-empty bins."""
    count, k, sp = _bin_stats(y, p, bin_edges(p, n_bins, strategy))
    ne = count > 0
    return count[ne], np.abs(k[ne] - sp[ne]) / count[ne]


def reliability_table(y, p, n_bins: int = 10, strategy: str = "uniform") -> pd.DataFrame:
    """One row per bin: lower, upper, count, mean_predicted, observed_rate, its Jeffreys 95%
    interval (ci95_lo, ci95_hi; reaching 0 or 1 when a bin has no successes or failures) and gap = observed_rate - mean_predicted. Empty bins have
    count 0 and NaN rates."""
    from bayes_router.study.overview import jeffreys_interval

    y, p = _check_yp(y, p)
    edges = bin_edges(p, n_bins, strategy)
    count, k, sp = _bin_stats(y, p, edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = sp / count
        rate = k / count
    lo, hi = np.full(len(count), np.nan), np.full(len(count), np.nan)
    ne = count > 0
    if ne.any():
        lo[ne], hi[ne] = jeffreys_interval(k[ne], count[ne])
    return pd.DataFrame({
        "lower": edges[:-1], "upper": edges[1:], "count": count.astype(np.int64), "mean_predicted": mean_p,
        "observed_rate": rate, "ci95_lo": lo, "ci95_hi": hi, "gap": rate - mean_p,
    })


def expected_calibration_error(y, p, n_bins: int = 15, strategy: str = "uniform") -> float:
    """ECE = Σ_bins (n_b / n) |observed rate_b − mean predicted_b| (probability units, in [0, 1]).

    Note the binning bias: even a perfectly calibrated predictor has ECE of order
    sqrt(p(1−p) / n_b) from sampling noise within bins.
    """
    y, p = _check_yp(y, p)
    count, gap = _gaps(y, p, n_bins, strategy)
    return float(np.sum(count * gap) / count.sum())


def maximum_calibration_error(y, p, n_bins: int = 15, strategy: str = "uniform", min_count: int = 1) -> float:
    """MCE = max over bins with at least ``min_count`` calls of |observed rate − mean predicted|."""
    y, p = _check_yp(y, p)
    count, gap = _gaps(y, p, n_bins, strategy)
    gap = gap[count >= max(1, min_count)]
    return float(gap.max()) if len(gap) else float("nan")


def brier_score(y, p) -> float:
    """Mean squared error of p against the 0/1 outcome (lower is better; 0.25 for p = 0.5)."""
    y, p = _check_yp(y, p)
    return float(np.mean((p - y) ** 2))


def log_loss(y, p, eps: float = 1e-15) -> float:
    """Mean negative log-likelihood in nats, p clipped to [eps, 1 − eps]."""
    y, p = _check_yp(y, p)
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


METRICS = ("ece_equal_width", "ece_equal_mass", "mce", "brier", "log_loss")


def _metrics_point(y: np.ndarray, p: np.ndarray, n_bins: int) -> dict[str, float]:
    return {
        "ece_equal_width": expected_calibration_error(y, p, n_bins, "uniform"),
        "ece_equal_mass": expected_calibration_error(y, p, n_bins, "quantile"),
        "mce": maximum_calibration_error(y, p, n_bins, "uniform", min_count=10),
        "brier": brier_score(y, p),
        "log_loss": log_loss(y, p),
    }


def calibration_metrics(y, p, n_bins: int = 15, n_boot: int = 200, seed: int = 0) -> dict[str, float]:
    """ECE (equal-width and equal-mass), MCE (bins with ≥ 10 calls), Brier and log loss,
    each with a 95% bootstrap interval over calls (``<metric>_ci95_lo/hi``; none if n_boot=0),
    plus n, mean_predicted and observed_rate."""
    y, p = _check_yp(y, p)
    out = _metrics_point(y, p, n_bins)
    if n_boot:
        rng = np.random.default_rng(seed)
        boot = {k: np.empty(n_boot) for k in METRICS}
        for b in range(n_boot):
            idx = rng.integers(0, len(y), len(y))
            for k, v in _metrics_point(y[idx], p[idx], n_bins).items():
                boot[k][b] = v
        for k in METRICS:
            lo, hi = np.nanquantile(boot[k], [0.025, 0.975])
            out[f"{k}_ci95_lo"], out[f"{k}_ci95_hi"] = float(lo), float(hi)
    out.update(n=int(len(y)), mean_predicted=float(p.mean()), observed_rate=float(y.mean()))
    return out


def plot_reliability_diagram(y=None, p=None, *, table: pd.DataFrame | None = None, n_bins: int = 10,
                             strategy: str = "uniform", ax=None, label: str | None = None, color=None,
                             show_counts: bool = True, show_intervals: bool = True):
    """Reliability diagram: observed rate against mean predicted p per bin, on ``ax``.

    Give ``y`` and ``p`` or a precomputed ``table`` (:func:`reliability_table`). The
    diagonal is perfect calibration; error bars are Jeffreys 95% intervals; with
    ``show_counts`` a histogram of bin counts is drawn on a twin y-axis (right).
    Returns ``ax``.
    """
    import matplotlib.pyplot as plt

    if table is None:
        table = reliability_table(y, p, n_bins, strategy)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    t = table[table["count"] > 0]
    if show_counts:
        ax2 = getattr(ax, "_bayes_router_counts", None) or ax.twinx()
        ax._bayes_router_counts = ax2
        ax2.bar((t["lower"] + t["upper"]) / 2, t["count"], width=(t["upper"] - t["lower"]) * 0.9,
                alpha=0.15, color=color or "grey", zorder=0)
        ax2.set_ylabel("calls per bin")
        ax.set_zorder(ax2.get_zorder() + 1)
        ax.patch.set_visible(False)
    ax.plot([0, 1], [0, 1], ls="--", color="black", lw=0.8, label="perfect calibration" if not
            any(line.get_label() == "perfect calibration" for line in ax.get_lines()) else None)
    yerr = None
    if show_intervals:
        yerr = np.clip(np.vstack([t["observed_rate"] - t["ci95_lo"], t["ci95_hi"] - t["observed_rate"]]), 0, None)
    ax.errorbar(t["mean_predicted"], t["observed_rate"], yerr=yerr, marker="o", ms=4, lw=1.2, capsize=2,
                label=label, color=color)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted P(correct)")
    ax.set_ylabel("observed fraction correct")
    return ax


# ----------------------------------------------------------------------------- recalibrators
class TemperatureScaling:
    """p' = σ(logit(p) / T), with T > 0 fitted by maximum likelihood on a calibration split.

    T > 1 softens over-confident predictions, T < 1 sharpens under-confident ones.
    ``inputs="probability"`` (default) takes p; ``"logit"`` takes logits directly.
    Predictions of exactly 0 or 1 (structural, e.g. an unparsed answer) stay fixed and
    do not enter the fit. Fitted attribute: ``temperature_``.
    """

    def __init__(self, inputs: str = "probability", bounds: tuple[float, float] = (0.02, 50.0)):
        if inputs not in ("probability", "logit"):
            raise InputError(f"inputs must be 'probability' or 'logit', got {inputs!r}")
        self.inputs = inputs
        self.bounds = bounds

    def _logits(self, s) -> np.ndarray:
        s = np.asarray(s, dtype=float)
        if self.inputs == "logit":
            return s
        if np.any((s < 0) | (s > 1)) or not np.all(np.isfinite(s)):
            raise InputError("TemperatureScaling: probabilities must be in [0, 1]")
        with np.errstate(divide="ignore"):
            return logit(s)

    def fit(self, scores, y) -> TemperatureScaling:
        from scipy.optimize import minimize_scalar

        z = self._logits(scores)
        y = np.asarray(y, dtype=float)
        if z.shape != y.shape:
            raise InputError(f"scores and y must have the same shape, got {z.shape} and {y.shape}")
        keep = np.isfinite(z)
        z, y = z[keep], y[keep]
        if len(z) == 0:
            raise InputError("TemperatureScaling: no finite scores to fit on")

        def nll(log_t):
            s = z / np.exp(log_t)
            return float(np.mean(np.logaddexp(0.0, s) - y * s))

        res = minimize_scalar(nll, bounds=tuple(np.log(self.bounds)), method="bounded",
                              options={"xatol": 1e-6})
        self.temperature_ = float(np.exp(res.x))
        self.n_fit_ = int(len(z))
        return self

    def transform(self, scores) -> np.ndarray:
        """Recalibrated probabilities, same shape as ``scores``."""
        if not hasattr(self, "temperature_"):
            raise InputError("TemperatureScaling: call fit() first")
        return expit(self._logits(scores) / self.temperature_)

    def fit_transform(self, scores, y) -> np.ndarray:
        return self.fit(scores, y).transform(scores)


class HistogramBucketing:
    """Histogram binning: each bucket of p maps to the success rate of its calibration calls.

    Buckets are equal-width (``strategy="uniform"``) or equal-mass (``"quantile"``,
    edges from the calibration p). With ``prior_strength`` s > 0 a bucket's rate is
    shrunk toward its mean predicted p: (successes + s·mean_p) / (count + s), a
    Beta prior worth s calls. An empty bucket maps to its midpoint. Fitted:
    ``edges_`` (buckets + 1,), ``rates_`` and ``counts_`` (buckets,).
    """

    def __init__(self, n_bins: int = 10, strategy: str = "uniform", prior_strength: float = 0.0):
        if prior_strength < 0:
            raise InputError(f"prior_strength must be non-negative, got {prior_strength}")
        self.n_bins = n_bins
        self.strategy = strategy
        self.prior_strength = prior_strength

    def fit(self, p, y) -> HistogramBucketing:
        y, p = _check_yp(y, p)
        self.edges_ = bin_edges(p, self.n_bins, self.strategy)
        b = bin_index(p, self.edges_)
        nb = len(self.edges_) - 1
        count = np.bincount(b, minlength=nb).astype(float)
        k = np.bincount(b, weights=y, minlength=nb)
        sp = np.bincount(b, weights=p, minlength=nb)
        mid = (self.edges_[:-1] + self.edges_[1:]) / 2
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_p = np.where(count > 0, sp / count, mid)
        s = self.prior_strength
        with np.errstate(invalid="ignore", divide="ignore"):
            rates = np.where(count + s > 0, (k + s * mean_p) / (count + s), mid)
        self.rates_ = rates
        self.counts_ = count.astype(np.int64)
        return self

    def transform(self, p) -> np.ndarray:
        """The calibrated rate of each p's bucket, shape like ``p``."""
        if not hasattr(self, "rates_"):
            raise InputError("HistogramBucketing: call fit() first")
        p = np.asarray(p, dtype=float)
        return self.rates_[bin_index(p, self.edges_)]

    def fit_transform(self, p, y) -> np.ndarray:
        return self.fit(p, y).transform(p)


RECALIBRATORS = {"none": None, "temperature": TemperatureScaling, "histogram": HistogramBucketing}


# ----------------------------------------------------------------------------- the study
@dataclass
class CalibrationStudy:
    """Result of :func:`calibration_study`.

    ``predictions``: long table on held-out (test) calls with columns question_id,
    model, predictor, recalibration, p, correct. ``metrics``: one row per
    (predictor, recalibration, model) incl. model "all", with :func:`calibration_metrics`.
    ``temperatures``: fitted T per (predictor, model). ``split``: question ids.
    """

    predictions: pd.DataFrame
    metrics: pd.DataFrame
    temperatures: pd.DataFrame
    split: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)


def _correct_matrix(log: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    return log.pivot(index="question_id", columns="model", values="correct")[list(models)].astype(float)


def calibration_study(
    log: pd.DataFrame,
    questions: pd.DataFrame,
    models: Sequence[str],
    *,
    n_questions: int | None = None,
    test_frac: float = 0.3,
    calib_frac: float = 0.25,
    seed: int = 0,
    bayes_stages: Sequence[str] = ("pre", "post"),
    sampler: str = "nutpie",
    draws: int | None = None,
    tune: int = 1000,
    chains: int | None = None,
    n_bins: int = 15,
    hist_bins: int = 10,
    n_boot: int = 200,
    progress: bool = False,
) -> CalibrationStudy:
    """Compare calibration of the ``classifier`` baseline and the Bayesian posterior predictive.

    Splits with THE split (:mod:`bayes_router.data.split`): questions every model answered
    (``n_questions`` of them if given) → (train, test) with ``test_frac``; train →
    (fit, calibration) with ``calib_frac`` by the same function. Base predictors are fit
    on the *fit* questions only: the scikit-learn ``ClassifierRouter`` (per-model
    logistic regression on TF-IDF + subject + length) and, for each stage in
    ``bayes_stages``, the :class:`~bayes_router.models.reliability.ReliabilityModel`, whose
    posterior-mean P(correct) is the posterior predictive probability. Temperature
    scaling and histogram bucketing are fitted per (predictor, model) on the
    *calibration* questions and everything is scored on the *test* questions.
    """
    from tqdm.auto import tqdm

    from bayes_router.data.split import rows_for

    models = list(models)
    fit_ids, calib_ids, test_ids = _fit_calibration_test_split(log, models, n_questions, test_frac, calib_frac, seed)
    q = _question_texts(questions, np.concatenate([fit_ids, calib_ids, test_ids]))

    fit_log = rows_for(log, models, fit_ids)
    parts = {"calib": calib_ids, "test": test_ids}
    rows_of = {k: rows_for(log, models, v).sort_values(["question_id", "model"]).reset_index(drop=True)
               for k, v in parts.items()}
    base: dict[str, dict[str, np.ndarray]] = {}  # predictor -> part -> p aligned with rows_of[part]
    diagnostics: dict = {}

    steps = ["classifier", *[f"bayes-{s}" for s in bayes_stages]]
    bar = tqdm(steps, desc="calibration study", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        if name == "classifier":
            base[name] = _classifier_p_correct(fit_log, q, models, rows_of, seed)
        else:
            base[name], diagnostics[name] = _posterior_predictive_p_correct(
                name.split("-", 1)[1], fit_log, rows_of, sampler, draws, tune, chains, seed)

    predictions, temps = _recalibrated_predictions(base, rows_of, models, hist_bins)
    metrics = calibration_table(predictions, n_bins=n_bins, n_boot=n_boot, seed=seed)
    split = {"fit_question_ids": fit_ids.tolist(), "calibration_question_ids": calib_ids.tolist(),
             "test_question_ids": test_ids.tolist()}
    return CalibrationStudy(predictions, metrics, pd.DataFrame(temps), split, diagnostics)


def _fit_calibration_test_split(log: pd.DataFrame, models: list[str], n_questions: int | None, test_frac: float,
                                calib_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fit, calibration, test) question ids: THE split by question, then train split again."""
    from bayes_router.data.split import sample_questions, train_test_split

    ids = sample_questions(log, models, n_questions, seed=seed)
    train_ids, test_ids = train_test_split(ids, test_frac=test_frac, seed=seed)
    fit_ids, calib_ids = train_test_split(train_ids, test_frac=calib_frac, seed=seed + 1)
    return fit_ids, calib_ids, test_ids


def _question_texts(questions: pd.DataFrame, ids: np.ndarray) -> pd.DataFrame:
    """Question texts indexed by question_id; refuses when a sampled question has none."""
    q = questions.set_index("question_id")
    missing = pd.Index(ids).difference(q.index)
    if len(missing):
        raise InputError(f"question texts missing for {len(missing)} questions, e.g. {missing[:5].tolist()}")
    return q


def _classifier_p_correct(fit_log: pd.DataFrame, q: pd.DataFrame, models: list[str],
                          rows_of: dict[str, pd.DataFrame], seed: int) -> dict[str, np.ndarray]:
    """The ClassifierRouter's P(correct), fitted on the fit questions, per part aligned with its rows."""
    from bayes_router.policies.routers import ClassifierRouter

    Y = _correct_matrix(fit_log, models)
    clf = ClassifierRouter(random_state=seed).fit(q.loc[Y.index].reset_index(), Y)
    by_part = {}
    for part, rows in rows_of.items():
        qids = np.sort(rows["question_id"].unique())
        P = clf.p_correct(q.loc[qids].reset_index())  # questions x models
        by_part[part] = P.stack().reindex(
            pd.MultiIndex.from_arrays([rows["question_id"], rows["model"].astype(str)])).to_numpy()
    return by_part


def _posterior_predictive_p_correct(stage: str, fit_log: pd.DataFrame, rows_of: dict[str, pd.DataFrame],
                                    sampler: str, draws: int | None, tune: int, chains: int | None,
                                    seed: int) -> tuple[dict[str, np.ndarray], dict]:
    """The ``stage`` reliability model's posterior-mean P(correct) per part, and its convergence report."""
    from bayes_router.models.reliability import ReliabilityModel

    rm = ReliabilityModel(stage=stage)
    rm.fit(fit_log, sampler=sampler, draws=draws, tune=tune, chains=chains, seed=seed, progress=False)
    diagnostics = convergence_report(rm.idata).to_dict() if sampler != "advi" else {"sampler": "advi"}
    by_part = {part: rm.p_correct_mean(rows) for part, rows in rows_of.items()}
    return by_part, diagnostics


def _recalibrated_predictions(base: dict[str, dict[str, np.ndarray]], rows_of: dict[str, pd.DataFrame],
                              models: list[str], hist_bins: int) -> tuple[pd.DataFrame, list[dict]]:
    """Temperature scaling and histogram bucketing fitted per (predictor, model) on the calibration
    rows, applied to the test rows: the long predictions table and the fitted temperatures."""
    preds, temps = [], []
    for name, by_part in base.items():
        for m in models:
            cm = (rows_of["calib"]["model"] == m).to_numpy()
            tm = (rows_of["test"]["model"] == m).to_numpy()
            p_cal, y_cal = by_part["calib"][cm], rows_of["calib"]["correct"].to_numpy(float)[cm]
            p_test = by_part["test"][tm]
            ts = TemperatureScaling().fit(p_cal, y_cal)
            hb = HistogramBucketing(n_bins=hist_bins, strategy="quantile").fit(p_cal, y_cal)
            temps.append({"predictor": name, "model": m, "temperature": ts.temperature_})
            test_rows = rows_of["test"][tm]
            for recal, p_out in (("none", p_test), ("temperature", ts.transform(p_test)),
                                 ("histogram", hb.transform(p_test))):
                preds.append(pd.DataFrame({
                    "question_id": test_rows["question_id"].to_numpy(), "model": m, "predictor": name,
                    "recalibration": recal, "p": np.clip(p_out, 0.0, 1.0),
                    "correct": test_rows["correct"].to_numpy(bool),
                }))
    return pd.concat(preds, ignore_index=True), temps


def calibration_table(predictions: pd.DataFrame, n_bins: int = 15, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """:func:`calibration_metrics` per (predictor, recalibration, model), plus model "all"."""
    rows = []
    for (pred, recal), g in predictions.groupby(["predictor", "recalibration"], sort=False):
        for m, gm in [*g.groupby("model", sort=False), ("all", g)]:
            met = calibration_metrics(gm["correct"].to_numpy(bool), gm["p"].to_numpy(float), n_bins, n_boot, seed)
            rows.append({"predictor": pred, "recalibration": recal, "model": m, **met})
    return pd.DataFrame(rows)

