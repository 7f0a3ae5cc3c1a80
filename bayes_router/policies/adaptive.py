"""The Bayesian adaptive routing policy (``bayes-adaptive``) and its decision rule.

Utility of an answer (per question) = 1[final answer correct] - cost_scale * (sum of the
cost in USD of every call made). ``cost_scale`` (lambda) is in 1/USD.

1. First call. For every pool model m, the pre-call ReliabilityModel gives the posterior
   predictive probability q_m = P(m correct) (the posterior mean of p: for one binary
   outcome the posterior predictive probability *is* the posterior mean, and utility is
   linear in it, so expected utility needs nothing more). The first call goes to
   argmax_m  q_m - lambda * E[cost_m]  (E[cost] from :func:`base.expected_cost`).

2. Errors are correlated: a hard question is hard for every model. The correctness of the
   pool's models on one question is a one-factor Gaussian copula with margins q_m and
   loadings learned on TRAIN (:mod:`bayes_router.models.copula`).

3. Evidence from a call (its letter, whether it parsed, the post-call logit shift and the
   stated confidence) and 4. the posterior support of each letter given the calls so far,
   with wrong answers that agree more than chance, are in
   :mod:`bayes_router.policies.combining`. The final answer is the letter with the largest
   posterior support.

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

On the IRT reliability family (``model_config: {family: {name: irt}}``) steps 2-5 are replaced by the
value of a second call that the shared question difficulty implies, with no copula
(:mod:`bayes_router.policies.adaptive_irt`; ``second_call="copula"`` keeps the rule above for comparison).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_router.errors import InputError
from bayes_router.models.copula import ErrorCorrelation, _std_normal_quadrature, conditional_success
from bayes_router.policies import register
from bayes_router.policies.base import (
    Policy,
    RoutingContext,
    TestCalls,
    expected_cost,
    precall_matrix,
)
from bayes_router.policies.combining import (
    CallEvidence,
    _join_probabilities,
    _wrong_agreement_rate,
    combine_answers,
    letter_posterior,
)
from bayes_router.study.metrics import bootstrap_indices, bootstrap_mean_ci


# ------------------------------------------------------------------ the decision rule
def value_of_information(s, called, candidates, evidence: CallEvidence, w: float, weights,
                         expected_cost_usd, cost_scale: float) -> np.ndarray:
    """Myopic value of information (utility units) of calling each candidate next.

    s: (K, G) conditional success probabilities of the pool on this question; called: as
    in :func:`~bayes_router.policies.combining.letter_posterior`; candidates: pool indices of models not yet called;
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
def _with_precall(observed: pd.DataFrame, precall: pd.DataFrame) -> pd.DataFrame:
    """Observed call columns joined with the pre-call features the ReliabilityModel needs."""
    feats = precall.drop(columns=["prompt_tokens"]).drop_duplicates(["question_id", "model"])
    return observed.merge(feats, on=["question_id", "model"], how="left", validate="one_to_one")


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
        **_second_call_calibration(dec, two, first_right, final_right),
    }


def _second_call_calibration(dec: pd.DataFrame, two: pd.Series, first_right: pd.Series, final_right: pd.Series,
                             n_boot: int = 2000, seed: int = 0) -> dict:
    """Was the value of the second call what the rule expected? On two-call questions, the gain it
    predicted (``gain_second``: value of information + lambda * the call's expected cost, the
    accuracy it expected to add) against the realized one (final right - first right), with a 95%
    bootstrap interval over those questions."""
    if "gain_second" not in dec or not two.any():
        return {}
    realized = (final_right[two].astype(float) - first_right[two].astype(float)).to_numpy()
    return {
        "predicted_gain_on_two_calls": float(dec.loc[two, "gain_second"].mean()),
        "realized_gain_on_two_calls": float(realized.mean()),
        "realized_gain_on_two_calls_ci95": bootstrap_mean_ci(realized, bootstrap_indices(len(realized), n_boot, seed)),
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
    second_call : {"auto", "copula", "irt"}
        The rule for the second call and the final answer. "copula": the value of information
        above, with the error correlation and the evidence bins. "irt": the IRT family's own rule
        (:mod:`bayes_router.policies.adaptive_irt`; at most two calls). "auto": "irt" when the
        context's reliability family is IRT, else "copula".
    irt_draws : int or None
        Posterior draws (evenly spaced) behind the IRT rule's probabilities; None: all.
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
                "n_bins": 8, "n_nodes": 32, "confidence_bins": 4, "fit_draws": 200,
                "second_call": "auto", "irt_draws": 1000}
    SECOND_CALL_RULES = ("auto", "copula", "irt")

    def _second_call_rule(self, family: str) -> str:
        rule = self.params["second_call"]
        if rule not in self.SECOND_CALL_RULES:
            raise InputError(f"policy bayes-adaptive: second_call must be one of {self.SECOND_CALL_RULES}, got {rule!r}")
        if rule == "irt" and family != "irt":
            raise InputError("policy bayes-adaptive: second_call='irt' needs the IRT reliability family "
                             "(model_config: {family: {name: irt}})")
        return ("irt" if family == "irt" else "copula") if rule == "auto" else rule

    def fit(self, ctx: RoutingContext) -> BayesAdaptivePolicy:
        super().fit(ctx)
        models = list(ctx.models)
        if int(self.params["max_calls"]) < 1:
            raise InputError("policy bayes-adaptive: max_calls must be at least 1")
        log = ctx.train_log[ctx.train_log["model"].isin(models)]
        pre_rm, post_rm = ctx.reliability("pre"), ctx.reliability("post")
        self.rule_ = self._second_call_rule(getattr(pre_rm, "family", "v1"))
        self.wrong_agreement_ = _wrong_agreement_rate(log, models)
        if self.rule_ == "irt":  # the IRT rule needs no copula and no evidence bins
            from bayes_router.policies.adaptive_irt import RouteCache

            self.irt_cache_ = RouteCache()
            return self
        n_draws = self.params["fit_draws"]
        if n_draws is not None and int(n_draws) < 1:
            raise InputError(f"policy bayes-adaptive: fit_draws must be at least 1 or None, got {n_draws}")
        draws = {} if n_draws is None else {"n_draws": int(n_draws)}
        q_pre = pre_rm.p_correct_mean(log, **draws)
        p_post = post_rm.p_correct_mean(log, **draws)
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
        return self

    @property
    def lam(self) -> float:
        cs = self.params["cost_scale"]
        return float(self.ctx_.cost_scale if cs is None else cs)

    def route(self, calls: TestCalls) -> pd.Series:
        self._check_fitted()
        if self.rule_ == "irt":
            from bayes_router.policies.adaptive_irt import route_irt

            answers, self.decisions_ = route_irt(self, calls)
            return answers
        ctx, models = self.ctx_, list(self.ctx_.models)
        lam, thr = self.lam, float(self.params["threshold"])
        pre = calls.precall()
        qmat = precall_matrix(pre, ctx.reliability("pre").p_correct_mean(pre), models)
        cmat = precall_matrix(pre, expected_cost(ctx, pre), models)
        qids = qmat.index.to_numpy()
        q, cost = qmat.to_numpy(), cmat.to_numpy()
        nodes, weights = _std_normal_quadrature(int(self.correlation_.n_nodes))
        s_all = conditional_success(q, self.correlation_.loadings, nodes)  # (n, K, G)
        post_rm = ctx.reliability("post")
        w = self.wrong_agreement_
        state: list[list] = [[] for _ in qids]
        log_rows = {i: {"voi_second": np.nan, "gain_second": np.nan} for i in range(len(qids))}

        def observe(rows_idx, model_idx):
            obs = calls.call(qids[rows_idx], [models[m] for m in model_idx])
            p_post = post_rm.p_correct_mean(_with_precall(obs, pre))
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
                    log_rows[r]["gain_second"] = float(voi[best] + lam * cost[r, cand[best]])
                if voi[best] > thr:
                    rows_idx.append(r)
                    picks.append(cand[best])
            if not rows_idx:
                break
            observe(np.asarray(rows_idx), np.asarray(picks))

        answers, records = _decide_all(state, log_rows, qids, models, s_all, w, weights)
        self.decisions_ = pd.DataFrame.from_records(records)
        return pd.Series(answers, index=pd.Index(qids, name="question_id"), name="answer", dtype=object)


def _decide_all(state, log_rows, qids, models, s_all, w, weights) -> tuple[list, list[dict]]:
    """The final answer of each question (the letter with the largest posterior support given its
    calls) and its decision record, with the Noisy-OR comparators on the first two answers."""
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
            "gain_second": log_rows[r]["gain_second"],
            "changed": final != first_letter,
        })
    return answers, records
