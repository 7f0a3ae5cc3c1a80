"""The Bayesian adaptive routing policy (``bayes-adaptive``) and the maths it rests on.

Utility of an answer (per question) = 1[final answer correct] - cost_scale * (sum of the
cost in USD of every call made). ``cost_scale`` (lambda) is in 1/USD.

1. First call. For every pool model m, the pre-call ReliabilityModel gives the posterior
   predictive probability q_m = P(m correct) (the posterior mean of p: for one binary
   outcome the posterior predictive probability *is* the posterior mean, and utility is
   linear in it, so expected utility needs nothing more). The first call goes to
   argmax_m  q_m - lambda * E[cost_m]  (E[cost] from :func:`base.expected_cost`).

2. Errors are correlated: a hard question is hard for every model. The correctness of
   the pool's models on one question is modelled by a **one-factor Gaussian copula**
   (a latent difficulty F ~ N(0, 1) shared by all models)::

       Z_m = lambda_m * F + sqrt(1 - lambda_m^2) * eps_m,   eps_m ~ N(0, 1) iid
       C_m = 1[Z_m < Phi^-1(q_m)]

   so each margin is exactly the pre-call q_m, and the latent (tetrachoric) correlation
   of models j, k is lambda_j * lambda_k. Conditional on F the models are independent,
   which makes every joint probability a 1-D integral, computed by Gauss-Hermite
   quadrature::

       P(C = c) = int phi(f) prod_m s_m(f)^c_m (1 - s_m(f))^(1 - c_m) df,
       s_m(f)   = Phi((Phi^-1(q_m) - lambda_m f) / sqrt(1 - lambda_m^2)).

   The loadings lambda_m are fitted by maximum likelihood on the TRAIN questions: the
   joint outcome vector of each train question given its pre-call margins q (the
   posterior-mean predictions of the pre-call model), i.e. the correlation of the
   correctness *residuals* given the pre-call predictions (:class:`ErrorCorrelation`).
   For K = 2 this is a tetrachoric correlation with question-specific thresholds.

3. Evidence from a call. After calling m we see its letter and its post-call features
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

4. Letters. Given the letters of the called models, the only correctness configurations
   consistent with them are: "letter L is the right one" (every model that said L is
   right, all the others wrong) for each distinct letter L, or "none of them is right".
   Wrong answers agree with each other more than chance; a wrong model joins the block
   of earlier wrong models that share a letter B with probability proportional to
   w^|B| (1 - w)^(n_wrong - |B|), or starts a new wrong letter with probability
   proportional to (1 - w)^n_wrong (w: pairwise agreement rate of two wrong parsed
   answers on TRAIN questions). The posterior support of letter L is then::

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

5. Value of information of calling model k next (myopic, one step ahead)::

       VOI_k = E_outcome[ max_L P(L right | data, outcome of k) ] - max_L P(L right | data)
               - lambda * E[cost_k]

   where the outcome of k (right or wrong, its letter agreeing with which earlier letter,
   parsed or not, its evidence bin) is averaged under the current posterior, which
   includes the correlation: if model 1 looks wrong, F is probably high, so model 2 is
   less likely right than its margin q_2 says. The call is made when max_k VOI_k exceeds
   ``threshold`` (0 is the Bayes decision rule); the third call follows the same rule.
   VOI >= -lambda E[cost] always (the expected maximum of the posterior cannot fall).

Everything is vectorized over quadrature nodes and candidate models; the loop is over
questions (a few thousand at most), which keeps the logic readable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from bayes_router.errors import InputError
from bayes_router.policies import register
from bayes_router.policies.base import (
    Policy,
    RoutingContext,
    TestCalls,
    expected_cost,
    precall_matrix,
)

_EPS = 1e-6


# --------------------------------------------------------------------- pure maths
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


def _std_normal_quadrature(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and weights for E[g(F)], F ~ N(0, 1); weights sum to 1."""
    x, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    return x, w / w.sum()


def conditional_success(q, loadings, nodes):
    """s_m(f) = P(C_m = 1 | F = f) under the one-factor copula with margins q.

    q: (..., K) pre-call probabilities; loadings: (K,); nodes: (G,). Returns (..., K, G).
    """
    q = np.clip(np.asarray(q, dtype=float), _EPS, 1 - _EPS)
    lam = np.asarray(loadings, dtype=float)
    t = special.ndtri(q)[..., None]
    scale = np.sqrt(1.0 - lam**2)[:, None]
    return special.ndtr((t - lam[:, None] * nodes) / scale)


def joint_correct_probability(q, loadings, n_nodes: int = 40) -> float:
    """P(all the models of ``q`` are right) under the one-factor copula (for checks).

    q: (K,) margins; loadings: (K,). Latent correlations are loadings_j * loadings_k.
    """
    nodes, weights = _std_normal_quadrature(n_nodes)
    s = conditional_success(np.asarray(q, float), loadings, nodes)
    return float(weights @ np.prod(s, axis=0))


@dataclass
class ErrorCorrelation:
    """One-factor Gaussian copula of correctness across the pool (see module docstring).

    ``loadings``: (K,) in (-1, 1), in pool order; the latent correlation of models j and k
    is ``loadings[j] * loadings[k]`` (:attr:`latent_correlation`).
    """

    models: list[str]
    loadings: np.ndarray
    n_nodes: int = 32

    @property
    def latent_correlation(self) -> pd.DataFrame:
        """(K, K) latent (tetrachoric) correlation of correctness given the pre-call margins."""
        r = np.outer(self.loadings, self.loadings)
        np.fill_diagonal(r, 1.0)
        return pd.DataFrame(r, index=self.models, columns=self.models)

    @classmethod
    def independent(cls, models) -> ErrorCorrelation:
        """Zero loadings: errors independent given the pre-call margins."""
        return cls(list(models), np.zeros(len(models)))

    @classmethod
    def fit(cls, correct, q, models, n_nodes: int = 32, max_loading: float = 0.95) -> ErrorCorrelation:
        """Maximum-likelihood loadings from TRAIN outcomes.

        correct: (n_questions, K) 0/1 outcomes; q: (n_questions, K) pre-call margins
        (posterior-mean predictions); columns in ``models`` order.
        """
        from scipy import optimize

        c = np.asarray(correct, dtype=float)
        q = np.clip(np.asarray(q, dtype=float), _EPS, 1 - _EPS)
        if c.shape != q.shape or c.ndim != 2:
            raise ValueError(f"correct {c.shape} and q {q.shape} must be equal (n_questions, K) arrays")
        nodes, weights = _std_normal_quadrature(n_nodes)
        log_w = np.log(weights)
        t = special.ndtri(q)[:, :, None]  # (n, K, 1)

        def negloglik(theta):
            lam = max_loading * np.tanh(theta)
            z = (t - lam[None, :, None] * nodes) / np.sqrt(1 - lam**2)[None, :, None]
            ll = np.where(c[:, :, None] > 0.5, special.log_ndtr(z), special.log_ndtr(-z))  # (n, K, G)
            return -special.logsumexp(ll.sum(axis=1) + log_w, axis=1).sum()

        res = optimize.minimize(negloglik, np.full(c.shape[1], 0.5), method="L-BFGS-B")
        return cls(list(models), max_loading * np.tanh(res.x), n_nodes=n_nodes)


@dataclass
class CallEvidence:
    """Discrete evidence model of one call (see module docstring, point 3), per pool model.

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

    s: (K, G) conditional success probabilities (:func:`conditional_success`) of the pool;
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


def value_of_information(s, called, candidates, evidence: CallEvidence, w: float, weights,
                         expected_cost_usd, cost_scale: float) -> np.ndarray:
    """Myopic value of information (utility units) of calling each candidate next.

    s: (K, G) conditional success probabilities of the pool on this question; called: as
    in :func:`letter_posterior`; candidates: pool indices of models not yet called;
    evidence: the call-evidence model; w: wrong-agreement rate; weights: (G,) quadrature
    weights; expected_cost_usd: (K,) pre-call expected cost (USD); cost_scale: lambda (1/USD).

    Returns (len(candidates),): E[max_L P(L right | after the call)] - max_L P(L right now)
    - cost_scale * expected_cost_usd[k].
    """
    letters, support, _, v = letter_posterior(s, called, w, weights)
    p_now = float(support.max()) if len(support) else 0.0
    parsed_letters = [letter for _, letter, _, _ in called if letter is not None]
    cand = np.asarray(candidates, dtype=int)
    sk = s[cand]  # (C, G)
    i1 = v @ (sk * weights).T  # (H, C): P(hypothesis, candidate right)
    i0 = v @ ((1 - sk) * weights).T  # (H, C): P(hypothesis, candidate wrong)
    n_l = len(letters)
    # Where the candidate's wrong letter lands under each hypothesis: (H, n_l + 1) over
    # [existing letters..., new letter].
    join = np.zeros((n_l + 1, n_l + 1))
    for h, hyp in enumerate(letters + [None]):
        wrong = [letter for letter in parsed_letters if letter != hyp]
        probs = _join_probabilities(wrong, w)
        for j, letter in enumerate(letters):
            join[h, j] = probs.get(letter, 0.0)
        join[h, n_l] = probs[None]
    pr = evidence.p_bin_right[cand]  # (C, B)
    u = evidence.p_unparsed_wrong[cand]  # (C,)
    pw = (1 - u)[:, None] * evidence.p_bin_wrong[cand]  # (C, B)
    expected = np.zeros(len(cand))
    for j in range(n_l + 1):  # the candidate says existing letter j, or a new letter (j == n_l)
        # wrong-candidate weight of each letter hypothesis (rows 0..n_l-1), per candidate
        wrong_part = i0[:n_l] * join[:n_l, j][:, None]  # (n_l, C)
        if j < n_l:
            right_part = i1[j]  # hypothesis "letter j right" and candidate right
            cand_w = [right_part[:, None] * pr]  # (C, B)
            others = np.delete(np.arange(n_l), j)
        else:
            right_part = i1[n_l]  # "none right" before, candidate right: its new letter is right
            cand_w = [right_part[:, None] * pr]
            others = np.arange(n_l)
        for o in others:
            cand_w.append(wrong_part[o][:, None] * pw)
        expected += np.max(np.stack(cand_w), axis=0).sum(axis=1)
    if n_l:  # the candidate gives no parsable answer: it is wrong, letters unchanged
        expected += u * i0[:n_l].max(axis=0)
    cost = np.asarray(expected_cost_usd, dtype=float)[cand]
    return expected - p_now - cost_scale * cost


# ------------------------------------------------------------------ the policy
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


def _with_precall(observed: pd.DataFrame, precall: pd.DataFrame) -> pd.DataFrame:
    """Observed call columns joined with the pre-call features the ReliabilityModel needs."""
    feats = precall.drop(columns=["prompt_tokens"]).drop_duplicates(["question_id", "model"])
    return observed.merge(feats, on=["question_id", "model"], how="left", validate="one_to_one")


def _mean_proba(rm, calls: pd.DataFrame, n_draws: int | None = None) -> np.ndarray:
    """Posterior-mean P(correct), shape (rows,)."""
    if len(calls) == 0:
        return np.zeros(0)
    kwargs = {} if n_draws is None else {"n_draws": n_draws}
    return rm.p_correct(calls, **kwargs).values.astype(float).mean(axis=0)


def combining_summary(decisions: pd.DataFrame, truth: pd.Series) -> dict:
    """How often combining changed the first answer, and whether that helped.

    ``decisions``: :attr:`BayesAdaptivePolicy.decisions_` (one row per test question);
    ``truth``: the correct letter indexed by question_id. Returns shares of questions
    (second/third call rate, changed rate), counts of changes that turned a wrong first
    answer right (``changed_and_helped``), a right one wrong (``changed_and_hurt``) or
    neither, accuracy of the first and of the final answer on the questions with two or
    more calls, and, on the questions with exactly two calls, the accuracy of the final
    answer (letter posterior with learned error correlation) against the
    Noisy-OR rule under independence (same letters: that letter; else the larger p).
    """
    dec = decisions.copy()
    answer = truth.reindex(dec["question_id"]).to_numpy()

    def right(col):
        return pd.Series(dec[col].to_numpy() == answer, index=dec.index).fillna(False).astype(bool)

    first_right, final_right = right("first_answer"), right("final_answer")
    changed = dec["changed"].astype(bool)
    multi = dec["n_calls"] >= 2
    two = dec["n_calls"] == 2
    return {
        "n_questions": int(len(dec)),
        "second_call_rate": float(multi.mean()) if len(dec) else 0.0,
        "third_call_rate": float((dec["n_calls"] >= 3).mean()) if len(dec) else 0.0,
        "changed_rate": float(changed.mean()) if len(dec) else 0.0,
        "changed_and_helped": int((changed & final_right & ~first_right).sum()),
        "changed_and_hurt": int((changed & ~final_right & first_right).sum()),
        "changed_neither": int((changed & ~final_right & ~first_right).sum()),
        "n_multi_call": int(multi.sum()),
        "accuracy_first_answer_on_multi_call": float(first_right[multi].mean()) if multi.any() else None,
        "accuracy_final_answer_on_multi_call": float(final_right[multi].mean()) if multi.any() else None,
        "n_two_calls": int(two.sum()),
        "accuracy_final_on_two_calls": float(final_right[two].mean()) if two.any() else None,
        "accuracy_noisy_or_on_two_calls": float(right("noisy_or_answer_first_two")[two].mean()) if two.any() else None,
        **_stated_noisy_or(dec, two, right),
    }


def _stated_noisy_or(dec: pd.DataFrame, two: pd.Series, right) -> dict:
    """On two-call questions where both models stated a confidence: the final answer's accuracy
    against the Noisy-OR rule applied to the stated confidences instead of p_post."""
    if "noisy_or_stated_answer_first_two" not in dec:
        return {}
    both = two & dec["noisy_or_stated_answer_first_two"].notna()
    return {
        "n_two_calls_with_stated_confidence": int(both.sum()),
        "accuracy_final_on_two_calls_with_stated": float(right("final_answer")[both].mean()) if both.any() else None,
        "accuracy_noisy_or_stated_on_two_calls": (float(right("noisy_or_stated_answer_first_two")[both].mean())
                                                  if both.any() else None),
    }


@register
class BayesAdaptivePolicy(Policy):
    """``bayes-adaptive``: first call by pre-call expected utility, further calls by
    value of information with learned error correlation (see the module docstring).

    Parameters
    ----------
    cost_scale : float or None
        lambda in utility = correct - lambda * cost (1/USD); None: the context's.
    threshold : float
        A further call is made when its VOI (utility units, net of lambda * cost) exceeds it.
    max_calls : int
        At most this many calls per question.
    error_correlation : bool
        Learn the copula loadings (True) or assume independence given the margins (False).
    n_bins : int
        Evidence bins of the post-call logit shift.
    confidence_bins : int
        Equal-mass bins of the models' stated confidence crossed with those (0: ignore stated
        confidence; used only where the train log has it).
    fit_draws : int or None
        Posterior draws (evenly spaced) behind the posterior-mean p(correct) of each TRAIN call that
        the error correlation and the evidence bins are fitted on; None: all. 200 by default: the
        Monte Carlo error of a mean of 200 draws is 1/sqrt(200), 7% of the per-call posterior sd,
        small against the spread between calls that the bins resolve, at a twentieth of the cost of
        4000 draws on the whole train log (routing itself uses every draw).
    knob_values : list, optional
        The cost_scale values swept for the frontier.

    After :meth:`route`, ``decisions_`` holds one row per test question: the models called
    in order, the first answer, the final answer, its posterior support, the Noisy-OR
    confidence of the first two answers, the VOI of the second call and whether combining
    changed the answer.
    """

    name = "bayes-adaptive"
    may_call_twice = True
    knob = "cost_scale"
    knob_grid = (0.0, 25.0, 50.0, 75.0, 100.0, 125.0, 150.0, 175.0, 200.0, 250.0, 300.0, 400.0, 600.0, 1000.0, 3000.0)
    defaults = {"cost_scale": None, "threshold": 0.0, "max_calls": 3, "error_correlation": True,
                "n_bins": 8, "n_nodes": 32, "confidence_bins": 4, "fit_draws": 200}

    def fit(self, ctx: RoutingContext) -> BayesAdaptivePolicy:
        super().fit(ctx)
        models = list(ctx.models)
        if int(self.params["max_calls"]) < 1:
            raise InputError("policy bayes-adaptive: max_calls must be at least 1")
        log = ctx.train_log[ctx.train_log["model"].isin(models)]
        pre_rm, post_rm = ctx.reliability("pre"), ctx.reliability("post")
        n_draws = self.params["fit_draws"]
        if n_draws is not None and int(n_draws) < 1:
            raise InputError(f"policy bayes-adaptive: fit_draws must be at least 1 or None, got {n_draws}")
        q_pre = _mean_proba(pre_rm, log, n_draws)
        p_post = _mean_proba(post_rm, log, n_draws)
        frame = log[["question_id", "model", "correct", "parsed"]].assign(q=q_pre, p=p_post)

        def wide(col):
            return frame.pivot(index="question_id", columns="model", values=col)[models].dropna()

        q, p = wide("q"), wide("p")
        correct, parsed = wide("correct").astype(bool), wide("parsed").astype(bool)
        common = q.index.intersection(correct.index)
        q, p, correct, parsed = q.loc[common], p.loc[common], correct.loc[common], parsed.loc[common]
        stated = log.pivot(index="question_id", columns="model", values="confidence")  # NaN: none stated
        stated = stated.reindex(index=common, columns=models).astype(float).to_numpy()
        if self.params["error_correlation"]:
            self.correlation_ = ErrorCorrelation.fit(correct.to_numpy(), q.to_numpy(), models,
                                                     n_nodes=int(self.params["n_nodes"]))
        else:
            self.correlation_ = ErrorCorrelation.independent(models)
        self.evidence_ = CallEvidence.fit(correct.to_numpy(), parsed.to_numpy(), q.to_numpy(), p.to_numpy(),
                                          n_bins=int(self.params["n_bins"]), confidence=stated,
                                          confidence_bins=int(self.params["confidence_bins"]))
        self.wrong_agreement_ = _wrong_agreement_rate(log, models)
        return self

    @property
    def lam(self) -> float:
        cs = self.params["cost_scale"]
        return float(self.ctx_.cost_scale if cs is None else cs)

    def route(self, calls: TestCalls) -> pd.Series:
        self._check_fitted()
        ctx, models = self.ctx_, list(self.ctx_.models)
        lam, thr = self.lam, float(self.params["threshold"])
        pre = calls.precall()
        qmat = precall_matrix(pre, _mean_proba(ctx.reliability("pre"), pre), models)
        cmat = precall_matrix(pre, expected_cost(ctx, pre), models)
        qids = qmat.index.to_numpy()
        q, cost = qmat.to_numpy(), cmat.to_numpy()
        nodes, weights = _std_normal_quadrature(int(self.correlation_.n_nodes))
        s_all = conditional_success(q, self.correlation_.loadings, nodes)  # (n, K, G)
        post_rm = ctx.reliability("post")
        w = self.wrong_agreement_
        state: list[list] = [[] for _ in qids]
        log_rows = {i: {"voi_second": np.nan} for i in range(len(qids))}

        def observe(rows_idx, model_idx):
            obs = calls.call(qids[rows_idx], [models[m] for m in model_idx])
            p_post = _mean_proba(post_rm, _with_precall(obs, pre))
            stated = pd.to_numeric(obs["confidence"], errors="coerce").to_numpy(dtype=float)
            for r, m, pred, parsed, pp, sc in zip(rows_idx, model_idx, obs["pred"].to_numpy(),
                                                  obs["parsed"].to_numpy(), p_post, stated, strict=True):
                l1, l0 = self.evidence_.likelihood(m, bool(parsed), q[r, m], pp, sc)
                letter = None if pd.isna(pred) else str(pred)
                state[r].append((m, letter, l1, l0))
                log_rows[r].setdefault("p_post", []).append(float(pp))
                log_rows[r].setdefault("stated", []).append(float(sc))

        first = np.argmax(q - lam * cost, axis=1)
        observe(np.arange(len(qids)), first)
        for step in range(2, int(self.params["max_calls"]) + 1):
            rows_idx, picks = [], []
            for r in range(len(qids)):
                called = {c[0] for c in state[r]}
                cand = [m for m in range(len(models)) if m not in called]
                if not cand:
                    continue
                voi = value_of_information(s_all[r], state[r], cand, self.evidence_, w, weights, cost[r], lam)
                best = int(np.argmax(voi))
                if step == 2:
                    log_rows[r]["voi_second"] = float(voi[best])
                if voi[best] > thr:
                    rows_idx.append(r)
                    picks.append(cand[best])
            if not rows_idx:
                break
            observe(np.asarray(rows_idx), np.asarray(picks))

        answers, records = [], []
        for r in range(len(qids)):
            letters, support, _, _ = letter_posterior(s_all[r], state[r], w, weights)
            final = letters[int(np.argmax(support))] if letters else None
            answers.append(final)
            first_letter = state[r][0][1]
            pp = log_rows[r]["p_post"]
            sc = log_rows[r]["stated"]
            nor_letter, nor, stated_letter = None, np.nan, None
            if len(state[r]) >= 2:  # Noisy-OR under independence on the first two answers, the comparator
                nor_letters, nor_p, _ = combine_answers(first_letter, pp[0], state[r][1][1], pp[1])
                nor_letter, nor = nor_letters[0], nor_p[0]
                if np.isfinite(sc[:2]).all():  # the same rule on the two models' stated confidence
                    stated_letter = combine_answers(first_letter, sc[0], state[r][1][1], sc[1])[0][0]
            records.append({
                "question_id": int(qids[r]),
                "models_called": [models[c[0]] for c in state[r]],
                "n_calls": len(state[r]),
                "first_model": models[state[r][0][0]],
                "first_answer": first_letter,
                "p_first": float(pp[0]),
                "final_answer": final,
                "p_final": float(support.max()) if len(support) else 0.0,
                "p_noisy_or_first_two": float(nor),
                "noisy_or_answer_first_two": nor_letter,
                "stated_first": sc[0],
                "noisy_or_stated_answer_first_two": stated_letter,
                "voi_second": log_rows[r]["voi_second"],
                "changed": final != first_letter,
            })
        self.decisions_ = pd.DataFrame.from_records(records)
        return pd.Series(answers, index=pd.Index(qids, name="question_id"), name="answer", dtype=object)
