"""The online routing harness: questions arrive one at a time, the router pays and learns.

For one pool, :func:`online_study` draws (seed ``seed``) a stream of ``n_questions``
questions answered by every model, plus disjoint sets for an optional warm start and for
fitting the frozen offline reference. For each of ``n_orders`` arrival orders (seeds
``seed``, ``seed + 1``, ...) every online policy starts afresh (from the prior, or from the
warm-start questions with every model's outcome), and for each arriving question it calls
models through a :class:`~bayes_router.policies.online.QuestionCalls` gate, which charges
each call its logged ``cost_usd`` and reveals only that call's outcome and signals; then it
updates. The frozen reference (``offline:bayes-adaptive``) is fitted once with the offline
machinery (:func:`bayes_router.study.evaluate.run_policy` on a train split) and routes the
stream without learning.

Scoring after each question t (cumulative over questions 1..t, averaged over orders for
``curve``, with 5%-95% bands over orders in ``bands``):

* ``accuracy``: share answered correctly; ``cost_per_question``: USD spent per question;
* ``regret``: sum of u(oracle) - u(policy), with u = correct - cost_scale * cost_usd and the
  oracle the cheapest correct model of the question (else the cheapest): it grows linearly
  for any router that cannot see outcomes before calling;
* ``regret_vs_best_fixed``: the bandit pseudo-regret against the best model per subject in
  hindsight, sum of mean utility(best model of the subject) - mean utility(chosen model),
  means over the stream's questions of that subject. Sublinear growth means learning.

The result is the ONLINE.json dict (``models``, ``seed``, ``n_questions``, ``warm_start_questions``, ``policies``); ``bands``, ``regret_vs_best_fixed`` and
``meta`` only add to it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayes_router.data.prices import (
    CALIBRATION_STUDY_PRICES,
    default_prices_path,
    load_prices,
    price_of,
)
from bayes_router.data.split import questions_answered_by_all, rows_for, sample_questions
from bayes_router.errors import InputError
from bayes_router.policies.online import (
    OFFLINE_PREFIX,
    ONLINE_POLICIES,
    OnlineStream,
    make_online_policy,
)

DEFAULT_ONLINE_POLICIES = ("thompson", "ucb", "greedy", "linucb-budget", "offline:bayes-adaptive")
#: lambda (1/USD) of the headline evaluations: a cent of cost weighs as much as 1% accuracy.
DEFAULT_COST_SCALE = 100.0
BAND_QUANTILES = (0.05, 0.95)


def check_policy_names(names: Sequence[str]) -> list[str]:
    """Validate online policy names (``thompson``, ``ucb``, ``greedy``, ``linucb-budget``, ``offline:<name>``)."""
    from bayes_router.policies import make_policy

    names = list(names)
    if len(set(names)) != len(names):
        raise InputError(f"policies: a policy is listed twice: {names}")
    for n in names:
        if n.startswith(OFFLINE_PREFIX):
            try:
                make_policy(n[len(OFFLINE_PREFIX):])
            except InputError as exc:
                raise InputError(f"policies: '{n}': {exc}") from None
        elif n not in ONLINE_POLICIES:
            known = sorted(ONLINE_POLICIES) + ["offline:bayes-adaptive"]
            raise InputError(f"policies: unknown online policy '{n}'; known: {', '.join(known)}")
    if not names:
        raise InputError("policies: name at least one policy")
    return names


def pool_prices(models: Sequence[str], prices: pd.DataFrame | None = None) -> np.ndarray:
    """(K, 2) USD per million input and output tokens of ``models``.

    Default: the project's MMLU-Pro price table, or the calibration study's when that one
    holds every model (the two logs are priced by their own tables)."""
    if prices is None:
        prices = load_prices()
        if not set(models) <= set(prices.index):
            study_path = default_prices_path(CALIBRATION_STUDY_PRICES)
            study = load_prices(study_path) if study_path.exists() else None
            if study is not None and set(models) <= set(study.index):
                prices = study
    return np.array([price_of(prices, m) for m in models], dtype=float)


def split_questions(log: pd.DataFrame, models: Sequence[str], n_questions: int, warm_start_questions: int,
                    offline_train_questions: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stream, warm-start, offline-train) question ids, disjoint, drawn with ``seed`` from
    the questions every model answered with one answer key. Raises InputError when there are too few."""
    if n_questions < 1 or warm_start_questions < 0 or offline_train_questions < 0:
        raise InputError("questions must be at least 1; warm-start and offline-train counts non-negative")
    ids = sample_questions(log, models, None, seed)  # all of them, questions with two answer keys left out
    need = n_questions + warm_start_questions + offline_train_questions
    if need > len(ids):
        raise InputError(f"questions: {n_questions} streamed + {warm_start_questions} warm-start + "
                         f"{offline_train_questions} offline-train = {need}, but only {len(ids)} questions are "
                         f"answered by every model of {list(models)} (with one answer key)")
    perm = np.random.default_rng(seed).permutation(ids)
    stream = np.sort(perm[:n_questions])
    warm = np.sort(perm[n_questions:n_questions + warm_start_questions])
    train = np.sort(perm[n_questions + warm_start_questions:need])
    return stream, warm, train


def run_online_policy(policy, stream: OnlineStream, warm: OnlineStream | None = None) -> dict[str, np.ndarray]:
    """Run one fresh online policy over ``stream``; per question (arrival order): chosen model,
    correct (bool), cost_usd, n_calls, and seconds (route + update, wall clock)."""
    if warm is not None:  # every model's outcome of the warm-start questions, as an offline log gives
        for i in range(len(warm)):
            q, gate = warm.question(i), warm.calls(i)
            for m in range(warm.n_models):
                policy.learn(q, gate.call(m))
    correct_all, _ = stream.outcome()
    n = len(stream)
    chosen = np.empty(n, dtype=np.int64)
    cost = np.empty(n)
    n_calls = np.empty(n, dtype=np.int64)
    seconds = np.empty(n)
    for i in range(n):
        q, gate = stream.question(i), stream.calls(i)
        t0 = time.perf_counter()
        m = policy.route(q, gate)
        seconds[i] = time.perf_counter() - t0
        if m not in gate.called:
            raise ValueError(f"online policy '{policy.name}' answered with model {m}, which it did not call")
        chosen[i], cost[i], n_calls[i] = m, gate.cost_usd, len(gate.called)
    return {"chosen": chosen, "correct": correct_all[np.arange(n), chosen], "cost_usd": cost,
            "n_calls": n_calls, "seconds": seconds}


def fit_offline(name: str, log: pd.DataFrame, models: list[str], train_ids: np.ndarray, stream_ids: np.ndarray,
                cost_scale: float, seed: int, sampler_config: dict | None = None,
                questions: pd.DataFrame | None = None, progress: bool = False) -> dict[str, object]:
    """Fit offline policy ``name`` once on ``train_ids`` and route the stream frozen.

    Returns {"correct", "cost_usd", "n_calls"} per stream question (index: question_id),
    "seconds_per_question" (routing time of the stream / its size), "seconds_fit", the
    reliability fits' convergence reports ("diagnostics"), and the frozen "policy" and its
    "setup" (for :func:`route_frozen` on a changed stream).
    """
    from bayes_router.models.diagnostics import convergence_report
    from bayes_router.models.reliability import default_draws
    from bayes_router.policies import make_policy
    from bayes_router.policies.base import RoutingContext
    from bayes_router.study.evaluate import DEFAULT_SAMPLER_CONFIG, EvaluationSetup

    if len(train_ids) < 2:
        raise InputError(f"'{OFFLINE_PREFIX}{name}' needs an offline training split (offline_train_questions >= 2)")
    cfg = {**DEFAULT_SAMPLER_CONFIG, **{k: v for k, v in (sampler_config or {}).items() if v is not None}}
    if cfg.get("draws") is None:
        cfg["draws"] = default_draws(int(cfg["chains"]))
    if questions is not None:
        questions = questions[questions["question_id"].isin(np.concatenate([train_ids, stream_ids]))]
    ctx = RoutingContext(train_log=rows_for(log, models, train_ids), models=models, questions=questions,
                         cost_scale=float(cost_scale), seed=seed, sampler_config=cfg, progress=progress)
    setup = EvaluationSetup(models, train_ids, stream_ids, ctx, rows_for(log, models, stream_ids))
    t0 = time.perf_counter()
    policy = make_policy(name).fit(ctx)
    seconds_fit = time.perf_counter() - t0
    diagnostics = {stage: convergence_report(rm.idata).to_dict() for stage, rm in ctx.reliability_models().items()
                   if getattr(rm, "idata", None) is not None and "sample_stats" in rm.idata.groups()}
    frozen = {"policy": policy, "setup": setup, "seconds_fit": seconds_fit, "diagnostics": diagnostics}
    return {**frozen, **route_frozen(frozen, setup.test_rows)}


def route_frozen(fitted: dict, rows: pd.DataFrame) -> dict[str, object]:
    """Route stream ``rows`` (e.g. a drifted copy) with a policy from :func:`fit_offline`, no refit.

    Returns {"correct", "cost_usd", "n_calls"} per question (index: question_id) and
    "seconds_per_question"."""
    from dataclasses import replace

    from bayes_router.study.evaluate import run_policy

    setup = replace(fitted["setup"], test_rows=rows)
    t0 = time.perf_counter()
    out = run_policy(fitted["policy"], setup)
    seconds = time.perf_counter() - t0
    index = pd.Index(out.question_ids, name="question_id")
    return {"correct": pd.Series(out.correct, index=index), "cost_usd": pd.Series(out.cost_usd, index=index),
            "n_calls": pd.Series(out.n_calls, index=index), "seconds_per_question": seconds / len(index)}


def oracle_utility(correct: np.ndarray, cost: np.ndarray, cost_scale: float) -> np.ndarray:
    """Per question (n,): utility of the cheapest correct model (else the cheapest model).

    ``correct``, ``cost``: (n, K) every model's logged outcome and cost (USD)."""
    masked = np.where(correct, cost, np.inf)
    has = correct.any(axis=1)
    pick = np.where(has, np.argmin(masked, axis=1), np.argmin(cost, axis=1))
    rows = np.arange(len(pick))
    return correct[rows, pick].astype(float) - cost_scale * cost[rows, pick]


def best_fixed_gap(correct: np.ndarray, cost: np.ndarray, subject: np.ndarray, cost_scale: float) -> np.ndarray:
    """(n, K): mean utility of the best model of each question's subject minus that of each model.

    Means over all stream questions of the subject (in hindsight); the pseudo-regret of
    choosing model m on question i is ``gap[i, m]`` (>= 0)."""
    utility = correct.astype(float) - cost_scale * cost
    gap = np.zeros_like(utility)
    for s in np.unique(subject):
        rows = subject == s
        mean = utility[rows].mean(axis=0)
        gap[rows] = mean.max() - mean
    return gap


def cumulative_curves(correct: np.ndarray, cost: np.ndarray, utility: np.ndarray, oracle: np.ndarray,
                      pseudo: np.ndarray) -> dict[str, np.ndarray]:
    """Cumulative accuracy, cost per question (USD), regret and pseudo-regret after each question."""
    t = np.arange(1, len(correct) + 1)
    return {"accuracy": np.cumsum(correct) / t, "cost_per_question": np.cumsum(cost) / t,
            "regret": np.cumsum(oracle - utility), "regret_vs_best_fixed": np.cumsum(pseudo)}


def growth_exponent(regret: np.ndarray) -> float | None:
    """Slope of log(regret) against log(t) over the second half of the run: 1 is linear growth,
    below 1 sublinear (0.5: sqrt(t)). None when regret is not positive there."""
    n = len(regret)
    t = np.arange(1, n + 1)
    half = slice(n // 2, n)
    r = regret[half]
    if n < 4 or not np.all(r > 0):
        return None
    return float(np.polyfit(np.log(t[half]), np.log(r), 1)[0])


def _summarize(per_order: list[dict[str, np.ndarray]], seconds: float, decimals: int = 6) -> dict:
    """ONLINE.json entry of one policy from its per-order curves: mean curve, bands, finals."""
    keys = ("accuracy", "cost_per_question", "regret", "regret_vs_best_fixed")
    stack = {k: np.stack([c[k] for c in per_order]) for k in keys}
    stack = {k: v for k, v in stack.items() if not np.isnan(v).any()}  # multi-call policies: no pseudo-regret
    mean = {k: v.mean(axis=0) for k, v in stack.items()}
    lo, hi = BAND_QUANTILES
    finals = {k: v[:, -1] for k, v in stack.items()}
    return {
        "accuracy": float(mean["accuracy"][-1]),
        "cost_per_question": float(mean["cost_per_question"][-1]),
        "curve": {k: np.round(v, decimals).tolist() for k, v in mean.items()},
        "bands": {k: {"lo": np.round(np.quantile(v, lo, axis=0), decimals).tolist(),
                      "hi": np.round(np.quantile(v, hi, axis=0), decimals).tolist()} for k, v in stack.items()},
        "final_per_order": {k: [float(x) for x in v] for k, v in finals.items()},
        "regret_growth_exponent": (growth_exponent(mean["regret_vs_best_fixed"])
                                   if "regret_vs_best_fixed" in mean else None),
        "seconds_per_update": float(seconds),
    }


def _order_curves(name: str, stream: OnlineStream, make, fitted: dict | None, warm: OnlineStream | None,
                  cost_scale: float) -> tuple[dict[str, np.ndarray], float]:
    """Curves of one policy on one arrival order and its seconds per question. ``make(name)``
    builds a fresh online policy; ``fitted``: the frozen offline policy's outcomes (or None)."""
    correct_all, cost_all = stream.outcome()
    oracle = oracle_utility(correct_all, cost_all, cost_scale)
    if fitted is not None:
        correct = fitted["correct"].reindex(stream.question_ids).to_numpy(bool)
        cost = fitted["cost_usd"].reindex(stream.question_ids).to_numpy(float)
        pseudo = np.full(len(stream), np.nan)  # a multi-call policy has no single chosen model
        secs = float(fitted["seconds_per_question"])
    else:
        out = run_online_policy(make(name), stream, warm)
        correct, cost = out["correct"], out["cost_usd"]
        gap = best_fixed_gap(correct_all, cost_all, stream.subject, cost_scale)
        pseudo = gap[np.arange(len(stream)), out["chosen"]]
        secs = float(out["seconds"].mean())
    utility = correct.astype(float) - cost_scale * cost
    return cumulative_curves(correct, cost, utility, oracle, pseudo), secs


def online_study(
    log: pd.DataFrame, models: Sequence[str], n_questions: int = 4000, seed: int = 0,
    policies: Sequence[str] = DEFAULT_ONLINE_POLICIES, n_orders: int = 5, cost_scale: float = DEFAULT_COST_SCALE,
    warm_start_questions: int = 0, offline_train_questions: int = 2000, prices: pd.DataFrame | None = None,
    sampler_config: dict | None = None, policy_params: dict[str, dict] | None = None,
    questions: pd.DataFrame | None = None, progress: bool = True, simulated: bool = False,
    transform=None,
) -> dict:
    """Run every policy online over ``n_orders`` arrival orders of one stream; returns ONLINE.json.

    Parameters
    ----------
    log : call log; models : the pool, cheapest first (the last is the big model).
    n_questions : questions streamed; seed : draws the stream and the splits, and is the first order's seed.
    policies : online names (``thompson``, ``ucb``, ``greedy``, ``linucb-budget``) and ``offline:<name>``.
    cost_scale : lambda (1/USD) in utility = correct - lambda * cost_usd.
    warm_start_questions : questions (disjoint from the stream) whose outcomes for every model the
        online policies see before the stream; 0 = start from the prior.
    offline_train_questions : questions the offline reference is fitted on (disjoint from both).
    prices : price table (USD per million tokens) the online policies' pre-call costs use.
    policy_params : name -> parameters of that online policy (e.g. {"thompson": {"process_noise": 1e-3}}).
    transform : optional f(rows, order) -> rows applied to the stream rows of each order (the
        simulated drift scenario degrades a model on the second half of the order).
    """
    from tqdm.auto import tqdm

    models = list(models)
    names = check_policy_names(policies)
    policy_params = policy_params or {}
    offline = [n for n in names if n.startswith(OFFLINE_PREFIX)]
    price_arr = pool_prices(models, prices)
    stream_ids, warm_ids, train_ids = split_questions(
        log, models, n_questions, warm_start_questions, offline_train_questions if offline else 0, seed)
    rows = rows_for(log, models, stream_ids)
    subjects = sorted(rows_for(log, models, np.concatenate([stream_ids, warm_ids]))["subject"].astype(str).unique())
    warm = OnlineStream(rows_for(log, models, warm_ids), models, warm_ids, subjects) if len(warm_ids) else None
    fitted = {n: fit_offline(n[len(OFFLINE_PREFIX):], log, models, train_ids, stream_ids, cost_scale, seed,
                             sampler_config, questions, progress) for n in offline}
    curves: dict[str, list] = {n: [] for n in names}
    seconds: dict[str, list] = {n: [] for n in names}
    bar = tqdm(total=n_orders * len(names), desc="online runs", disable=not progress, unit="run")
    for k in range(n_orders):
        order = np.random.default_rng(seed + k).permutation(stream_ids)
        order_rows = rows if transform is None else transform(rows, order)
        stream = OnlineStream(order_rows, models, order, subjects)
        frozen = fitted if transform is None else {n: route_frozen(f, order_rows) for n, f in fitted.items()}

        def make(name, k=k):
            return make_online_policy(name, models, len(subjects), price_arr, cost_scale, seed + k,
                                      **policy_params.get(name, {}))

        for name in names:
            curve, secs = _order_curves(name, stream, make, frozen.get(name), warm, cost_scale)
            curves[name].append(curve)
            seconds[name].append(secs)
            bar.update(1)
    bar.close()
    result = {
        "models": models, "seed": int(seed), "n_questions": int(n_questions),
        "warm_start_questions": int(warm_start_questions),
        "policies": {n: _summarize(curves[n], float(np.mean(seconds[n]))) for n in names},
        "meta": {
            "simulated": bool(simulated), "cost_scale": float(cost_scale), "n_orders": int(n_orders),
            "order_seeds": [int(seed + k) for k in range(n_orders)],
            "offline_train_questions": int(len(train_ids)) if offline else 0,
            "offline_seconds_fit": {n: round(float(f["seconds_fit"]), 3) for n, f in fitted.items()},
            "offline_diagnostics": {n: f["diagnostics"] for n, f in fitted.items()},
            "offline_mean_calls": {n: float(f["n_calls"].mean()) for n, f in fitted.items()},
            "subjects": subjects, "policy_params": {k: dict(v) for k, v in policy_params.items()},
            "band": f"{int(BAND_QUANTILES[0] * 100)}%-{int(BAND_QUANTILES[1] * 100)}% over orders",
            "regret": "cumulative u(oracle) - u(policy), u = correct - cost_scale * cost_usd; oracle = cheapest "
                      "correct model of the question, else the cheapest",
            "regret_vs_best_fixed": "cumulative pseudo-regret against the best model per subject in hindsight "
                                    "(mean utility over the stream); NaN for multi-call offline policies",
            "seconds_per_update": "mean wall-clock seconds per question of route + update (online); routing "
                                  "time per question of the frozen offline policy",
        },
    }
    return result


def online_trust(log: pd.DataFrame, models: Sequence[str], n_tickets: int = 2000, train_questions: int = 2000,
                 seed: int = 0, hedge_weight: float = 0.1, window: int = 100) -> dict:
    """Trust in three routers learned ticket by ticket on real outcomes, and what routing by it costs.

    ``models``: small, medium, big (a pool's first, middle and last model). The routers'
    per-subject beliefs about θ = P(small fails, big succeeds) come from ``train_questions``
    questions (:func:`~bayes_router.models.trust_data.routers_from_train`: ``pooled``,
    ``by-subject``, ``independent``); ``n_tickets`` other questions arrive in a seeded random
    order. Returns {"trajectory": DataFrame per ticket, "cost_per_window": DataFrame per
    ``window`` tickets (USD per ``window`` tickets), "costs": TierCosts, "meta": dict}.
    """
    from bayes_router.models.online_trust import (
        routing_cost_per_window,
        trust_trajectory_by_subject,
    )
    from bayes_router.models.trust_costs import tier_costs_from_log
    from bayes_router.models.trust_data import outcomes_from_log, routers_from_train

    models = list(models)
    if len(models) < 2:
        raise InputError("online trust needs a pool of at least two models (small ... big)")
    small, medium, big = models[0], models[len(models) // 2], models[-1]
    stream_ids, _, train_ids = split_questions(log, models, n_tickets, 0, train_questions, seed)
    train_log = rows_for(log, models, train_ids)
    beliefs = routers_from_train(train_log, small, big, hedge_weight=hedge_weight)
    tickets = outcomes_from_log(log, small, big, stream_ids).set_index("question_id")
    order = np.random.default_rng(seed).permutation(stream_ids)
    tickets = tickets.loc[order].reset_index()
    tickets = tickets[tickets["subject"].astype(str).isin(list(beliefs))].reset_index(drop=True)
    traj = trust_trajectory_by_subject(beliefs, tickets)
    costs = tier_costs_from_log(train_log, small, medium, big)
    return {"trajectory": traj, "cost_per_window": routing_cost_per_window(traj, costs, window), "costs": costs,
            "meta": {"small": small, "medium": medium, "big": big, "n_tickets": int(len(traj)),
                     "train_questions": int(len(train_ids)), "seed": int(seed), "hedge_weight": float(hedge_weight),
                     "window": int(window), "y": "1 = the small model failed where the big one succeeded"}}


def degrade_second_half(model: str, rate: float, seed: int = 0):
    """A ``transform`` for :func:`online_study`: on the questions of the SECOND half of each
    arrival order, each correct answer of ``model`` turns wrong with probability ``rate``
    (its letter moves to the next option). For SIMULATED drift scenarios only."""
    if not 0 <= rate <= 1:
        raise InputError(f"degradation rate must be in [0, 1], got {rate}")

    def transform(rows: pd.DataFrame, order: np.ndarray) -> pd.DataFrame:
        rng = np.random.default_rng([seed, int(order[0])])
        late = set(order[len(order) // 2:].tolist())
        rows = rows.copy()
        hit = (rows["model"] == model) & rows["question_id"].isin(late) & rows["correct"].to_numpy(bool)
        hit &= rng.random(len(rows)) < rate
        nxt = [chr(ord("A") + (ord(a) - ord("A") + 1) % int(k)) for a, k in
               zip(rows.loc[hit, "answer"], rows.loc[hit, "n_options"], strict=True)]
        rows.loc[hit, "pred"] = nxt
        rows.loc[hit, "correct"] = False
        return rows

    return transform


def drift_scenario(n_questions: int = 2000, seed: int = 0, n_orders: int = 3, rate: float = 0.6,
                   process_noise: float = 5e-4, offline_train_questions: int = 600,
                   policies: Sequence[str] = DEFAULT_ONLINE_POLICIES, sampler_config: dict | None = None,
                   progress: bool = True) -> dict:
    """SIMULATED drift: three simulated models; halfway through each order the big one degrades.

    The log comes from :func:`bayes_router.data.simulate.simulate_call_log` (log_source
    "simulated"); from the middle of the stream on, each correct answer of the big model turns
    wrong with probability ``rate``. Online posterior policies forget with ``process_noise``
    (logit variance per question); "thompson (no forgetting)" is Thompson sampling without it;
    the offline reference is fitted on pre-drift questions and frozen. Returns an ONLINE.json
    dict with ``meta.simulated`` true and the scenario's parameters.
    """
    from bayes_router.data.simulate import simulate_call_log

    models = ["small", "mid", "big"]
    log, _, truth = simulate_call_log(n_questions + offline_train_questions, models=models,
                                      subjects=("math", "law", "biology", "history", "physics", "economics"),
                                      alpha=(-0.6, 0.4, 1.4), seed=seed)
    prices = pd.DataFrame({"usd_per_m_input": truth.usd_per_m, "usd_per_m_output": truth.usd_per_m},
                          index=pd.Index(models, name="model"))
    transform = degrade_second_half("big", rate, seed)
    params = {n: {"process_noise": process_noise} for n in ("thompson", "ucb", "greedy")}
    common = {"seed": seed, "n_orders": n_orders, "prices": prices, "simulated": True, "transform": transform,
              "progress": progress}
    result = online_study(log, models, n_questions, policies=policies, policy_params=params,
                          offline_train_questions=offline_train_questions, sampler_config=sampler_config, **common)
    if "thompson" in policies:
        static = online_study(log, models, n_questions, policies=["thompson"], **common)
        result["policies"]["thompson (no forgetting)"] = static["policies"]["thompson"]
    result["meta"]["scenario"] = {
        "label": "SIMULATED drift: the big model degrades halfway", "degraded_model": "big",
        "degradation_rate": float(rate), "drift_at_question": int(n_questions // 2),
        "process_noise": float(process_noise), "true_alpha": [float(a) for a in truth.alpha],
        "usd_per_m_tokens": [float(p) for p in truth.usd_per_m],
    }
    return result


def time_online_updates(calls: pd.DataFrame, models: Sequence[str], policy: str = "thompson",
                        n_questions: int | None = None, seed: int = 0) -> dict:
    """Mean wall-clock ms per question of one online policy (route + posterior update) over a stream.

    ``calls``: call-log rows (every question answered by every model); prices from the project's
    price table, or recovered from the rows' own costs for models not in it (simulated logs).
    """
    from bayes_router.policies.base import _prices_from_log

    models = list(models)
    ids = questions_answered_by_all(calls, models)
    ids = ids if n_questions is None else ids[:n_questions]
    table = load_prices()
    prices = table if set(models) <= set(table.index) else _prices_from_log(calls, models)
    order = np.random.default_rng(seed).permutation(ids)
    rows = rows_for(calls, models, ids)
    stream = OnlineStream(rows, models, order)
    p = make_online_policy(policy, models, len(stream.subjects), pool_prices(models, prices), DEFAULT_COST_SCALE, seed)
    t0 = time.perf_counter()
    out = run_online_policy(p, stream)
    total = time.perf_counter() - t0
    return {"policy": policy, "questions": int(len(ids)), "mean_ms": float(1e3 * out["seconds"].mean()),
            "p99_ms": float(1e3 * np.quantile(out["seconds"], 0.99)), "total_s": float(total),
            "note": "route + posterior update per question (the empirical-Bayes refits included)"}
