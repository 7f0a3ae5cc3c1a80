"""Evidence from a call and the combination of the answers of several calls (``bayes-adaptive``).

Evidence from a call. After calling m we see its letter and its post-call features
(parsed, completion tokens). The post-call ReliabilityModel turns these into p_post.
Its information beyond the pre-call prediction is the logit shift
d = logit(p_post) - logit(q_pre), which we discretize into bins learned on TRAIN
rows; the likelihoods P(bin | C_m = 1) and P(bin | C_m = 0, parsed) (Laplace
smoothed) and u_m = P(unparsed | C_m = 0) make the evidence model
(:class:`CallEvidence`). An unparsed answer has likelihood 0 under C_m = 1: such a
call is certainly wrong. The same discrete model is used for observed calls and for
the hypothetical outcomes of a call not yet made, so the posterior and the value of
information are coherent. Where the log has the models' own stated confidence, each bin
of d is crossed with equal-mass bins of the stated confidence (per model, learned on
TRAIN, plus one bin for "none stated"): the likelihoods are then of the pair, so both
models' stated confidence enters the combination of answers and the value of a further
call, without assuming the two signals independent.

Letters. Given the letters of the called models, the only correctness configurations
consistent with them are: "letter L is the right one" (every model that said L is
right, all the others wrong) for each distinct letter L, or "none of them is right".
Wrong answers agree with each other more than chance; a wrong model joins the block
of earlier wrong models that share a letter B with probability proportional to
w^|B| (1 - w)^(n_wrong - |B|), or starts a new wrong letter with probability
proportional to (1 - w)^n_wrong (w: pairwise agreement rate of two wrong parsed
answers on TRAIN questions). With s_m(f) the conditional success probability of the
error-correlation copula (:mod:`bayes_router.models.copula`), the posterior support of
letter L is then::

    P(L right | data) propto int phi(f) prod_m [letter_m == L ? s_m(f) P(e_m | 1)
                                              : (1 - s_m(f)) P(e_m | 0)] df * P(letter pattern | L)

The final answer is the letter with the largest posterior support. For two answers
this is the Noisy-OR rule (:func:`combine_answers`) with the independence replaced by the learned
correlation: if they agree the answer is that letter (:func:`noisy_or` gives the
confidence under independence, ``1 - (1 - p1)(1 - p2)``; the copula posterior gives
it under correlation, which is smaller when errors are positively correlated); if
they disagree the letter with the larger posterior support wins
(:func:`combine_answers`). Under independence and uninformative evidence the
disagreement rule reduces to "the larger p wins".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayes_router.models.copula import _EPS


def noisy_or(p1, p2):
    """Noisy-OR of two probabilities that the same letter is right: ``1 - (1 - p1)(1 - p2)``.

    The confidence of an answer two models agree on, *if their errors were independent*.
    Broadcasts; values in [0, 1].
    """
    p1 = np.asarray(p1, dtype=float)
    p2 = np.asarray(p2, dtype=float)
    return 1.0 - (1.0 - p1) * (1.0 - p2)


def combine_answers(letter1, p1, letter2, p2):
    """Combine two answers with the Noisy-OR rule under independence (the comparator of the learned correlation).

    If both letters are the same: that letter, with confidence ``noisy_or(p1, p2)``.
    Otherwise the letter with the larger posterior support (p; ties go to the first
    answer), with its own p. A missing letter (None/NA: unparsed, certainly wrong) never
    wins over a letter. Broadcasts over arrays of equal length.

    Returns (letters: object array, p: float array, changed: bool array, True where the
    combined letter differs from ``letter1``).
    """
    l1 = np.atleast_1d(np.asarray(letter1, dtype=object))
    l2 = np.atleast_1d(np.asarray(letter2, dtype=object))
    p1 = np.broadcast_to(np.asarray(p1, dtype=float), l1.shape).copy()
    p2 = np.broadcast_to(np.asarray(p2, dtype=float), l2.shape).copy()
    miss1 = pd.isna(l1)
    miss2 = pd.isna(l2)
    p1[miss1] = 0.0
    p2[miss2] = 0.0
    agree = ~miss1 & ~miss2 & (l1 == l2)
    take2 = ~agree & ((p2 > p1) | (miss1 & ~miss2))
    letters = np.where(take2, l2, l1)
    p = np.where(agree, noisy_or(p1, p2), np.where(take2, p2, p1))
    letters = np.where(pd.isna(letters), None, letters)
    changed = take2 & ~(pd.isna(l1) & pd.isna(l2))
    return letters, p, changed


@dataclass
class CallEvidence:
    """Discrete evidence model of one call (see the module docstring), per pool model.

    edges: (K, n_bins - 1) inner bin edges on d = logit(p_post) - logit(q_pre);
    p_bin_right / p_bin_wrong: (K, B) P(bin | right) and P(bin | wrong and parsed);
    p_unparsed_wrong: (K,) P(unparsed | wrong). ``n_bins == 1``: only parsed/unparsed informs.
    conf_edges: (K, n_conf - 1) inner edges on the stated confidence; with ``n_conf`` > 0 bins of
    it plus one for "none stated", bin = d_bin * (n_conf + 1) + conf_bin and B = n_bins * (n_conf + 1);
    None (no stated confidence in the train log): B = n_bins.
    """

    edges: np.ndarray
    p_bin_right: np.ndarray
    p_bin_wrong: np.ndarray
    p_unparsed_wrong: np.ndarray
    conf_edges: np.ndarray | None = None

    @classmethod
    def uninformative(cls, n_models: int) -> CallEvidence:
        """One bin, no parse failures: a call's features say nothing beyond its letter."""
        return cls(np.zeros((n_models, 0)), np.ones((n_models, 1)), np.ones((n_models, 1)), np.zeros(n_models))

    @classmethod
    def fit(cls, correct, parsed, q_pre, p_post, n_bins: int = 8, confidence=None,
            confidence_bins: int = 4) -> CallEvidence:
        """Learn bins and likelihoods from TRAIN rows; all arguments (n_questions, K).

        ``confidence``: the stated confidence in [0, 1] (NaN where none was stated), or None; it
        is used only when some train row has one and ``confidence_bins`` > 0.
        """
        correct = np.asarray(correct, bool)
        parsed = np.asarray(parsed, bool)
        d = _logit(p_post) - _logit(q_pre)
        k = correct.shape[1]
        conf = None if confidence is None else np.asarray(confidence, dtype=float)
        n_conf = int(confidence_bins) if conf is not None and np.isfinite(conf).any() else 0
        n_total = n_bins * (n_conf + 1) if n_conf else n_bins
        edges = np.zeros((k, n_bins - 1))
        conf_edges = np.full((k, max(n_conf - 1, 0)), np.inf) if n_conf else None
        right = np.zeros((k, n_total))
        wrong = np.zeros((k, n_total))
        unparsed = np.zeros(k)
        for m in range(k):
            ok = parsed[:, m]
            if n_bins > 1 and ok.sum() >= n_bins:
                edges[m] = np.quantile(d[ok, m], np.linspace(0, 1, n_bins + 1)[1:-1])
            b = np.searchsorted(edges[m], d[:, m], side="right")
            if n_conf:
                stated = ok & np.isfinite(conf[:, m])
                if n_conf > 1 and stated.sum() >= n_conf:  # equal-mass bins; ties leave some empty
                    conf_edges[m] = np.quantile(conf[stated, m], np.linspace(0, 1, n_conf + 1)[1:-1])
                b = b * (n_conf + 1) + _conf_bin(conf_edges[m], conf[:, m], n_conf)
            right[m] = np.bincount(b[ok & correct[:, m]], minlength=n_total) + 1.0
            wrong[m] = np.bincount(b[ok & ~correct[:, m]], minlength=n_total) + 1.0
            n_wrong = (~correct[:, m]).sum()
            unparsed[m] = ((~parsed[:, m]).sum() + 0.5) / (n_wrong + 1.0)
        return cls(edges, right / right.sum(1, keepdims=True), wrong / wrong.sum(1, keepdims=True),
                   np.clip(unparsed, 0.0, 1.0), conf_edges)

    def likelihood(self, m: int, parsed: bool, q_pre: float, p_post: float,
                   confidence: float | None = None) -> tuple[float, float]:
        """(P(evidence | right), P(evidence | wrong)) of an observed call of pool model ``m``
        (``confidence``: its stated confidence, None/NaN if none)."""
        if not parsed:
            return 0.0, float(self.p_unparsed_wrong[m])
        b = int(np.searchsorted(self.edges[m], _logit(p_post) - _logit(q_pre), side="right"))
        if self.conf_edges is not None:
            n_conf = self.conf_edges.shape[1] + 1
            c = np.nan if confidence is None else float(confidence)
            b = b * (n_conf + 1) + int(_conf_bin(self.conf_edges[m], np.array([c]), n_conf)[0])
        return float(self.p_bin_right[m, b]), float((1 - self.p_unparsed_wrong[m]) * self.p_bin_wrong[m, b])


def _conf_bin(edges: np.ndarray, confidence: np.ndarray, n_conf: int) -> np.ndarray:
    """Stated-confidence bin per row: 0..n_conf-1 by ``edges``, ``n_conf`` where none was stated."""
    c = np.asarray(confidence, dtype=float)
    return np.where(np.isfinite(c), np.searchsorted(edges, np.nan_to_num(c), side="right"), n_conf)


def _logit(p):
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _join_probabilities(wrong_letters: list, w: float) -> dict:
    """Where a new wrong answer lands: {existing wrong letter or None (a new letter): prob}.

    ``wrong_letters``: the letters of the earlier wrong parsed answers (with repeats).
    """
    n = len(wrong_letters)
    blocks: dict = {}
    for letter in wrong_letters:
        blocks[letter] = blocks.get(letter, 0) + 1
    a = {b: w**size * (1 - w) ** (n - size) for b, size in blocks.items()}
    a[None] = (1 - w) ** n
    total = sum(a.values())
    return {b: v / total for b, v in a.items()}


def _pattern_probability(letters: list, right_letter, w: float) -> float:
    """P(letter pattern | ``right_letter`` is the right one; None: none is) under the
    sequential wrong-agreement process. ``letters``: parsed letters in call order."""
    prob, wrong = 1.0, []
    for letter in letters:
        if letter == right_letter:
            continue
        prob *= _join_probabilities(wrong, w).get(letter, _join_probabilities(wrong, w)[None])
        wrong.append(letter)
    return prob


def letter_posterior(s, called, w: float, weights) -> tuple[list, np.ndarray, float, np.ndarray]:
    """Posterior support of each distinct letter given the calls of one question.

    s: (K, G) conditional success probabilities
    (:func:`~bayes_router.models.copula.conditional_success`) of the pool;
    called: list of (pool index m, letter or None, P(evidence | right), P(evidence | wrong));
    w: wrong-agreement rate; weights: (G,) quadrature weights.

    Returns (letters, support (n_letters,), P(none right), integrands (n_letters + 1, G)),
    the last row of integrands being the "none right" hypothesis; integrands already carry
    the letter-pattern probability and are unnormalized (their weighted sums / Z are the
    posteriors).
    """
    letters = []
    for _, letter, _, _ in called:
        if letter is not None and letter not in letters:
            letters.append(letter)
    parsed_letters = [letter for _, letter, _, _ in called if letter is not None]
    hyps = letters + [None]
    v = np.ones((len(hyps), s.shape[1]))
    for h, hyp in enumerate(hyps):
        for m, letter, l1, l0 in called:
            if hyp is not None and letter == hyp:
                v[h] *= s[m] * l1
            else:
                v[h] *= (1 - s[m]) * l0
        v[h] *= _pattern_probability(parsed_letters, hyp, w)
    mass = v @ weights
    z = mass.sum()
    if z <= 0:
        raise ValueError("evidence has zero probability under every hypothesis")
    return letters, mass[:-1] / z, float(mass[-1] / z), v / z


def _wrong_agreement_rate(train_log: pd.DataFrame, models: list[str]) -> float:
    """P(two models give the same letter | both wrong and both parsed), pooled over pairs, TRAIN."""
    rows = train_log[train_log["model"].isin(models)]
    pred = rows.pivot(index="question_id", columns="model", values="pred")
    correct = rows.pivot(index="question_id", columns="model", values="correct").astype(bool)
    same = total = 0.0
    cols = [m for m in models if m in pred.columns]
    for i, a in enumerate(cols):
        for b in cols[i + 1:]:
            both = (~correct[a]) & (~correct[b]) & pred[a].notna() & pred[b].notna()
            total += both.sum()
            same += (pred[a][both] == pred[b][both]).sum()
    return float((same + 1.0) / (total + 2.0))
