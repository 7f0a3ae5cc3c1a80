"""``bayes-adaptive``'s decision rule on the IRT reliability family: the value of a second call
derived from the question's difficulty, which every model shares (:mod:`bayes_router.models.irt.post`).
No copula: the correlation between the models' errors follows from the shared difficulty.

1. First call: argmax_m q_m - lambda * E[cost_m], with q the IRT's pre-call prediction (the
   question's difficulty integrated over its text prior). This is the rule used with v1.
2. Second call: for each candidate k, gain_k = E[max(P(first right), P(k right)) after k's
   signals] - P(first right | its signals) (:meth:`IRTReliabilityModel.second_call_value`).
   The call goes to argmax_k gain_k - lambda * E[cost_k] when that exceeds ``threshold``. At most
   two calls: the value of a third call is not derived here.
3. Final answer: the shared letter if the two calls agree, the parsed one if only one parsed, and
   otherwise the call with the larger P(this one right, the other wrong | both calls' signals)
   (:meth:`IRTReliabilityModel.pair_correctness`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_router.policies.base import TestCalls, expected_cost, precall_matrix
from bayes_router.policies.combining import combine_answers


def _letters(obs: pd.DataFrame) -> np.ndarray:
    return np.array([None if pd.isna(x) else str(x) for x in obs["pred"]], dtype=object)


def final_of_two(l1: np.ndarray, l2: np.ndarray, pair: pd.DataFrame, w: float) -> tuple[np.ndarray, np.ndarray]:
    """The answer of each two-call question and its posterior probability of being right.

    ``l1``, ``l2``: the two calls' letters (None: not parsed); ``pair``: :meth:`pair_correctness`
    (p00, p01, p10, p11) of the same rows; ``w``: the chance that two wrong parsed answers share a
    letter (learned on train). Two parsed letters that agree: both right, or both wrong with the
    same letter, P(right) = p11 / (p11 + w p00). Letters that differ (or one unparsed, where y = 0
    is certain): at most one is right; keep the likelier."""
    p00, p01, p10, p11 = (pair[c].to_numpy() for c in ("p00", "p01", "p10", "p11"))
    parsed1 = np.array([x is not None for x in l1])
    parsed2 = np.array([x is not None for x in l2])
    agree = parsed1 & parsed2 & (l1 == l2)
    w_diff = np.where(parsed1 & parsed2, 1.0 - w, 1.0)  # two wrong answers differ: certain if one is unparsed
    keep_first = np.where(parsed1 & parsed2, p10 >= p01, parsed1)
    z = np.maximum(p10 + p01 + w_diff * p00, 1e-300)
    p_disagree = np.where(keep_first, p10, p01) / z
    p_agree = p11 / np.maximum(p11 + w * p00, 1e-300)
    answer = np.where(agree | keep_first, l1, l2)
    return answer, np.where(agree, p_agree, p_disagree)


class RouteCache:
    """What the IRT rule computes that does not depend on lambda, shared by the copies of one fitted
    policy (``with_knob`` copies are shallow), so that a lambda sweep computes it once: the pre-call
    P of each test-question set, and per first call (its question, model and signals) the gain of
    every candidate second call and its own post-call P. A replayed call is fixed by its question
    and model, so the first call met at one lambda is the same at the next."""

    def __init__(self):
        self.precall: dict[bytes, pd.DataFrame] = {}
        self.gains: dict[tuple, dict] = {}  # first call -> {candidate model: gain}
        self.p_first: dict[tuple, float] = {}


def _first_call_keys(obs: pd.DataFrame) -> list[tuple]:
    cols = [c for c in ("question_id", "model", "parsed", "completion_tokens", "confidence") if c in obs.columns]
    return list(obs[cols].astype(str).itertuples(index=False, name=None))


def _second_call_gains(cache: RouteCache, rm, obs1: pd.DataFrame, cands: pd.DataFrame, n_draws) -> np.ndarray:
    """The gain of each row of ``cands`` (candidate calls on ``obs1``'s questions), from the cache or
    computed for the first calls it lacks."""
    keys = pd.Series(_first_call_keys(obs1), index=obs1["question_id"].to_numpy())
    new = ~keys.map(cache.gains.__contains__).to_numpy(dtype=bool)
    if new.any():
        first = obs1[new].reset_index(drop=True)
        todo = cands[cands["question_id"].isin(first["question_id"])].reset_index(drop=True)
        gain = rm.second_call_value(first, todo, n_draws=n_draws)["gain"].to_numpy()
        for qid, rows in todo.assign(gain=gain).groupby("question_id"):
            cache.gains[keys[qid]] = dict(zip(rows["model"].astype(str), rows["gain"], strict=True))
    by_question = {q: cache.gains[k] for q, k in keys.items()}
    return np.array([by_question[q][m] for q, m in zip(cands["question_id"], cands["model"].astype(str),
                                                          strict=True)], dtype=float)


def route_irt(policy, calls: TestCalls) -> tuple[pd.Series, pd.DataFrame]:
    """Route ``calls`` with the IRT rule; returns the answers (indexed by question_id) and the
    decisions (the columns of ``BayesAdaptivePolicy.decisions_``)."""
    from bayes_router.policies.adaptive import _with_precall

    ctx, models, cache = policy.ctx_, list(policy.ctx_.models), policy.irt_cache_
    lam, thr, n_draws = policy.lam, float(policy.params["threshold"]), policy.params["irt_draws"]
    rm, post = ctx.reliability("pre"), ctx.reliability("post")
    pre = calls.precall()
    key = calls.question_ids.tobytes()
    if key not in cache.precall:
        cache.precall[key] = precall_matrix(pre, rm.p_correct_mean(pre, n_draws=n_draws), models)
    qmat = cache.precall[key]
    cmat = precall_matrix(pre, expected_cost(ctx, pre), models)
    qids = qmat.index.to_numpy()
    first_model = pd.Series(np.asarray(models, dtype=object)[np.argmax(qmat.to_numpy() - lam * cmat.to_numpy(), axis=1)],
                            index=qids)
    obs1 = _with_precall(calls.call(qids, first_model.to_numpy()), pre).set_index("question_id", drop=False)
    cands = pre[pre["model"].to_numpy() != first_model.reindex(pre["question_id"]).to_numpy()].reset_index(drop=True)
    voi, gain = pd.Series(np.nan, index=qids), pd.Series(np.nan, index=qids)
    obs2 = obs1.iloc[:0]
    if len(cands) and int(policy.params["max_calls"]) >= 2:
        cands = cands.assign(gain=_second_call_gains(cache, rm, obs1.reset_index(drop=True), cands, n_draws))
        cands["net"] = cands["gain"] - lam * expected_cost(ctx, cands)
        best = cands.loc[cands.groupby("question_id")["net"].idxmax()].set_index("question_id")
        voi, gain = best["net"].reindex(qids), best["gain"].reindex(qids)
        chosen = best[best["net"] > thr]
        if len(chosen):
            obs2 = _with_precall(calls.call(chosen.index.to_numpy(), chosen["model"].to_numpy()), pre)
            obs2 = obs2.set_index("question_id", drop=False)
    answers, dec = _decide(policy, rm, post, obs1, obs2, voi, n_draws)
    dec["gain_second"] = gain.reindex(dec["question_id"]).to_numpy()
    return answers, dec


def _first_call_p(cache: RouteCache, post, obs1: pd.DataFrame, n_draws) -> np.ndarray:
    """P(each first call right | its signals), from the cache or computed for the calls it lacks."""
    keys = _first_call_keys(obs1)
    new = np.array([k not in cache.p_first for k in keys], dtype=bool)
    if new.any():
        p = post.p_correct_mean(obs1[new].reset_index(drop=True), n_draws=n_draws)
        cache.p_first.update(zip([k for k, n in zip(keys, new, strict=True) if n], p, strict=True))
    return np.array([cache.p_first[k] for k in keys], dtype=float)


def _decide(policy, rm, post, obs1: pd.DataFrame, obs2: pd.DataFrame, voi: pd.Series, n_draws):
    """Final answers and the decision records, from the first calls and the second calls made."""
    qids = obs1.index.to_numpy()
    p1 = _first_call_p(policy.irt_cache_, post, obs1, n_draws)
    l1 = _letters(obs1)
    final, p_final = l1.copy(), p1.copy()
    two = np.isin(qids, obs2.index.to_numpy())
    dec = pd.DataFrame({"question_id": qids.astype(int), "first_model": obs1["model"].astype(str).to_numpy(),
                        "first_answer": l1, "p_first": p1, "stated_first": obs1["confidence"].to_numpy(dtype=float)})
    dec["models_called"] = [[m] for m in dec["first_model"]]
    dec["noisy_or_answer_first_two"], dec["noisy_or_stated_answer_first_two"] = None, None
    dec["p_noisy_or_first_two"] = np.nan
    if two.any():
        sec = obs2.loc[qids[two]]
        l2 = _letters(sec)
        pair = rm.pair_correctness(obs1.loc[qids[two]].reset_index(drop=True), sec.reset_index(drop=True),
                                   n_draws=n_draws)
        final[two], p_final[two] = final_of_two(l1[two], l2, pair, policy.wrong_agreement_)
        p2 = post.p_correct_mean(sec.reset_index(drop=True), n_draws=n_draws)
        nor_letters, nor_p, _ = combine_answers(l1[two], p1[two], l2, p2)  # the comparator: independence
        s1, s2 = dec.loc[two, "stated_first"].to_numpy(), sec["confidence"].to_numpy(dtype=float)
        stated = combine_answers(l1[two], s1, l2, s2)[0]
        both = np.isfinite(s1) & np.isfinite(s2)
        dec.loc[two, "noisy_or_answer_first_two"] = pd.Series(nor_letters, dtype=object).to_numpy()
        dec.loc[two, "p_noisy_or_first_two"] = nor_p
        dec.loc[two, "noisy_or_stated_answer_first_two"] = np.where(both, stated, None)
        dec.loc[two, "models_called"] = pd.Series([[a, b] for a, b in zip(dec.loc[two, "first_model"],
                                                                           sec["model"].astype(str), strict=True)],
                                                  index=dec.index[two])
    dec["n_calls"] = 1 + two.astype(int)
    dec["final_answer"], dec["p_final"], dec["voi_second"] = final, p_final, voi.reindex(qids).to_numpy()
    dec["changed"] = dec["final_answer"].to_numpy() != dec["first_answer"].to_numpy()
    answers = pd.Series(final, index=pd.Index(qids.astype(np.int64), name="question_id"), name="answer", dtype=object)
    return answers, dec
