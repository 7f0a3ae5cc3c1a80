"""The evaluation harness: every policy on the same held-out questions, every call charged.

``evaluate`` samples ``n_questions`` questions answered by every model of the
pool (fixed seed), splits them BY QUESTION into train and test
(:func:`bayes_router.data.split.train_test_split`), builds one
:class:`~bayes_router.policies.base.RoutingContext` from the train rows only,
fits each policy on it, and runs each policy on a fresh
:class:`~bayes_router.policies.base.TestCalls` over the test rows (once at its
default setting, then once per knob value for its cost-accuracy frontier). The
result is the RESULTS.json the README describes (``policies``, ``frontiers``, ``aiq``); extra
keys (``vs_big``, ``meta``) only add to it.

Scoring: a question is right when the policy's final letter equals the answer
(no answer counts as wrong); its cost is the realized ``cost_usd`` (USD) of
EVERY call the policy made on it. A policy may only answer with a letter one of
its own calls returned on that question (otherwise the harness raises).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayes_router.data.io import jsonable
from bayes_router.data.split import (
    answer_key_conflicts,
    questions_answered_by_all,
    rows_for,
    sample_questions,
    train_test_split,
)
from bayes_router.errors import InputError
from bayes_router.models.diagnostics import convergence_report
from bayes_router.models.reliability import (
    check_fitted_on,
    default_draws,
    resolve_model_config,
    resolve_sampler_config,
)
from bayes_router.policies import REGISTRY, default_policy_names, make_policy
from bayes_router.policies.adaptive import combining_summary
from bayes_router.policies.base import Policy, RoutingContext, TestCalls
from bayes_router.study.metrics import (
    accuracy_share_at_cost,
    aiq,
    aiq_bootstrap,
    bootstrap_indices,
    compare_to_reference,
    routellm_with_ci,
    savings_at_accuracy,
    summarize_policy,
)

SCHEMA_VERSION = 1
#: 2 chains after 1000 tuning steps; draws None = the reliability model's default, 4000 in total
#: (2 x 2000: the 3-model pools' slope spread needs it for bulk ESS >= 400); about a minute per trio fit.
DEFAULT_SAMPLER_CONFIG: dict = {"sampler": "nutpie", "draws": None, "tune": 1000, "chains": 2}


@dataclass
class EvaluationSetup:
    """The split and the fitting context of one evaluation."""

    models: list[str]
    train_question_ids: np.ndarray
    test_question_ids: np.ndarray
    ctx: RoutingContext
    test_rows: pd.DataFrame
    #: questions answered by every model but left out because their key differs among the pool's rows
    answer_key_conflicts_excluded: int = 0

    def test_calls(self) -> TestCalls:
        """A fresh TestCalls (nothing called yet) over the test questions."""
        return TestCalls(self.test_rows, self.models)


@dataclass
class PolicyOutcome:
    """Per-test-question results of one policy run, aligned with ``question_ids``."""

    question_ids: np.ndarray
    correct: np.ndarray  # (n_test,) bool
    cost_usd: np.ndarray  # (n_test,) USD charged for all calls on the question
    n_calls: np.ndarray  # (n_test,) int
    answers: pd.Series
    calls_made: pd.DataFrame = field(repr=False)

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())

    @property
    def cost_per_question(self) -> float:
        return float(self.cost_usd.mean())


def prepare(
    log: pd.DataFrame, models: Sequence[str], questions: pd.DataFrame | None = None,
    n_questions: int | None = None, test_frac: float = 0.3, cost_scale: float = 0.0, seed: int = 0,
    sampler_config: dict | None = None, prices: pd.DataFrame | None = None, progress: bool = False,
    reliability: dict | None = None, exclude_answer_key_conflicts: bool = True, model_config: dict | None = None,
    fit_seed: int | None = None,
) -> EvaluationSetup:
    """Sample questions answered by every model, split by question, build the train-only context.

    ``seed`` fixes the questions and the split; ``fit_seed`` (default ``seed``) the context's seed,
    which every fit uses (reliability posteriors, learned routers): a different ``fit_seed`` refits on
    the same split, to separate the fits' seed-to-seed variability from the questions'.

    ``sampler_config`` / ``model_config``: the reliability models' configurations (checked here,
    before any work; see :class:`~bayes_router.models.reliability.ReliabilityModel`).
    ``reliability``: optional {"pre"/"post": fitted ReliabilityModel} to use instead of
    fitting on the train split (they must have been fitted on these train questions only).
    ``exclude_answer_key_conflicts``: leave out questions whose key differs among the pool's
    rows (the default; see :func:`bayes_router.data.split.sample_questions`).
    """
    models = list(models)
    if len(models) < 1:
        raise InputError("models: name at least one model")
    if len(set(models)) != len(models):
        raise InputError(f"models: a model is listed twice: {models}")
    if not np.isfinite(cost_scale) or cost_scale < 0:
        raise InputError(f"cost_scale must be a non-negative number (per USD), got {cost_scale}")
    resolve_model_config(model_config)
    resolve_sampler_config({k: v for k, v in (sampler_config or {}).items() if v is not None})
    ids = sample_questions(log, models, n_questions, seed, exclude_answer_key_conflicts)
    n_conflicts = len(answer_key_conflicts(log, models, questions_answered_by_all(log, models)))
    train_ids, test_ids = train_test_split(ids, test_frac, seed)
    train_log = rows_for(log, models, train_ids)
    test_rows = rows_for(log, models, test_ids)
    leaked = np.intersect1d(train_log["question_id"].unique(), test_ids)
    assert len(leaked) == 0, f"train and test share questions {leaked[:5]}"
    if questions is not None:
        need = np.concatenate([train_ids, test_ids])
        missing = np.setdiff1d(need, questions["question_id"].to_numpy())
        if len(missing):
            raise InputError(f"question texts lack {len(missing)} sampled questions, e.g. {missing[:5].tolist()}")
        questions = questions[questions["question_id"].isin(need)].reset_index(drop=True)
    sampler_config = {**DEFAULT_SAMPLER_CONFIG, **{k: v for k, v in (sampler_config or {}).items() if v is not None}}
    if sampler_config.get("draws") is None:  # resolved here, so the results JSON says how many
        sampler_config["draws"] = default_draws(int(sampler_config["chains"]))
    ctx = RoutingContext(
        train_log=train_log, models=models, questions=questions, cost_scale=float(cost_scale),
        seed=seed if fit_seed is None else int(fit_seed), sampler_config=sampler_config, prices=prices,
        progress=progress, model_config=dict(model_config or {}),
    )
    for stage, model in (reliability or {}).items():
        check_fitted_on(model, models, train_ids, stage)
        ctx.set_reliability(stage, model)
    return EvaluationSetup(models, train_ids, test_ids, ctx, test_rows,
                           n_conflicts if exclude_answer_key_conflicts else 0)


def run_policy(policy: Policy, setup: EvaluationSetup) -> PolicyOutcome:
    """Route the test questions with a fitted policy on a fresh TestCalls and score it."""
    calls = setup.test_calls()
    answers = policy.route(calls)
    qids = calls.question_ids
    if not isinstance(answers, pd.Series):
        raise TypeError(f"policy '{policy.name}': route() must return a pd.Series, got {type(answers).__name__}")
    extra = pd.Index(answers.index).difference(qids)
    if len(extra):
        raise ValueError(f"policy '{policy.name}' answered questions that are not test questions: {extra[:5].tolist()}")
    answers = answers.astype("string").reindex(qids)
    made = calls.calls_made
    _check_answers_were_returned(policy.name, answers, made, setup.test_rows)
    truth = calls.answers().reindex(qids)
    correct = (answers == truth).fillna(False).to_numpy(dtype=bool)
    cost = made.groupby("question_id")["cost_usd"].sum().reindex(qids, fill_value=0.0).to_numpy(float)
    n_calls = made.groupby("question_id").size().reindex(qids, fill_value=0).to_numpy(np.int64)
    return PolicyOutcome(qids, correct, cost, n_calls, answers, made)


def _check_answers_were_returned(name: str, answers: pd.Series, made: pd.DataFrame, test_rows: pd.DataFrame) -> None:
    """Every non-null answer must be a letter one of the policy's own calls returned on that question."""
    given = answers.dropna()
    if given.empty:
        return
    seen = made[["question_id", "model"]].merge(
        test_rows[["question_id", "model", "pred"]], on=["question_id", "model"], how="left"
    ).dropna(subset=["pred"])
    ok_pairs = set(zip(seen["question_id"].astype(int), seen["pred"].astype(str), strict=True))
    bad = [q for q, a in given.items() if (int(q), str(a)) not in ok_pairs]
    if bad:
        raise ValueError(f"policy '{name}' answered questions {bad[:5]} with a letter none of its calls returned")


def sweep_knob(policy: Policy, setup: EvaluationSetup, values: Sequence | None = None) -> list[tuple[object, PolicyOutcome]]:
    """Run a fitted policy once per knob value (no refit); [(value, outcome), ...]."""
    values = policy.knob_values() if values is None else list(values)
    return [(v, run_policy(policy.with_knob(v), setup)) for v in values]


def frontier_table(
    policy: Policy, setup: EvaluationSetup, values: Sequence | None = None, n_boot: int = 1000,
    seed: int | None = None,
) -> pd.DataFrame:
    """A fitted policy's knob sweep with 95% bootstrap intervals, one row per knob value.

    Columns: policy, knob, value, accuracy, accuracy_lo, accuracy_hi, cost_per_question,
    cost_lo, cost_hi (USD per question), calls_per_question, cost_fraction_of_big (realized
    cost / realized cost of always-big on the same questions). Resamples are shared
    across rows (seeded by ``seed``, default the context's seed).
    """
    seed = setup.ctx.seed if seed is None else seed
    idx = bootstrap_indices(len(setup.test_question_ids), n_boot, seed)
    big = run_policy(make_policy(f"always:{setup.models[-1]}").fit(setup.ctx), setup)
    rows = []
    if policy.knob is None:
        sweep = [(None, run_policy(policy, setup))]
    else:
        sweep = sweep_knob(policy, setup, values)
    for value, o in sweep:
        s = summarize_policy(o.correct, o.cost_usd, o.n_calls, idx)
        rows.append({
            "policy": policy.name, "knob": policy.knob, "value": value,
            "accuracy": s["accuracy"], "accuracy_lo": s["accuracy_ci95"][0], "accuracy_hi": s["accuracy_ci95"][1],
            "cost_per_question": s["cost_per_question"], "cost_lo": s["cost_ci95"][0], "cost_hi": s["cost_ci95"][1],
            "calls_per_question": s["calls_per_question"],
            "cost_fraction_of_big": o.cost_per_question / big.cost_per_question,
        })
    return pd.DataFrame(rows)


def evaluate(
    log: pd.DataFrame, models: Sequence[str], questions: pd.DataFrame | None = None,
    n_questions: int | None = None, test_frac: float = 0.3, cost_scale: float = 0.0, seed: int = 0,
    policies: Sequence[str] | None = None, sampler_config: dict | None = None, progress: bool = True,
    n_boot: int = 1000, frontiers: bool = True, prices: pd.DataFrame | None = None,
    policy_params: dict[str, dict] | None = None, return_details: bool = False,
    reliability: dict | None = None, exclude_answer_key_conflicts: bool = True, model_config: dict | None = None,
    fit_seed: int | None = None,
):
    """Evaluate routing policies on held-out questions; returns the RESULTS.json dict.

    Parameters
    ----------
    log : call log (the call-log schema); questions : question texts (needed by knn, mf, classifier).
    models : the pool, cheapest -> biggest; the last is "the big model".
    n_questions : questions sampled among those every model answered (None: all).
    test_frac : share of them held out for testing. cost_scale : lambda (per USD) in
        utility = correct - lambda * cost_usd. seed : fixes sampling, split, fits and bootstrap.
    fit_seed : the fits' seed when it differs from ``seed`` (the split and the bootstrap keep ``seed``).
    policies : registry names (default: every registered policy, always:<m> for each model).
    sampler_config : the reliability fits' sampler settings (sampler, draws, tune, chains, target_accept, ...).
    model_config : the reliability models' priors and parameterizations.
    n_boot : bootstrap resamples of the test questions for every interval.
    frontiers : sweep each policy's knob for its cost-accuracy frontier (else one point each).
    policy_params : name -> extra constructor parameters (e.g. {"mip": {"time_limit_s": 30}}).
    return_details : also return (setup, {name: fitted policy}, {name: PolicyOutcome}).
    reliability : optional {"pre"/"post": ReliabilityModel already fitted on the same train split}.
    exclude_answer_key_conflicts : leave out questions whose key differs among the pool's rows
        (default); their number goes to ``meta.answer_key_conflicts_excluded``.
    """
    t_start = time.perf_counter()
    setup = prepare(log, models, questions, n_questions, test_frac, cost_scale, seed, sampler_config,
                    prices, progress, reliability, exclude_answer_key_conflicts, model_config, fit_seed)
    built, skipped = _resolve_policies(policies, setup, policy_params or {})
    idx = bootstrap_indices(len(setup.test_question_ids), n_boot, seed)
    runs = _run_policies(built, setup, idx, frontiers, progress)
    routellm_meta = _compare_to_big(runs, setup, idx)
    _add_aiq_intervals(runs, idx)
    results = {
        "schema_version": SCHEMA_VERSION,
        "models": setup.models,
        "seed": int(seed),
        "cost_scale": float(cost_scale),
        "train_question_ids": [int(q) for q in setup.train_question_ids],
        "test_question_ids": [int(q) for q in setup.test_question_ids],
        "policies": runs.summaries,
        "frontiers": runs.frontier_points,
        "aiq": aiq(runs.frontier_points),
        "meta": _results_meta(setup, runs, test_frac, n_boot, routellm_meta, skipped, t_start),
    }
    if return_details:
        return results, (setup, runs.fitted, runs.outcomes)
    return results


@dataclass
class _PolicyRuns:
    """What running every policy gives, keyed by policy name (insertion order = run order)."""

    fitted: dict[str, Policy] = field(default_factory=dict)
    outcomes: dict[str, PolicyOutcome] = field(default_factory=dict)
    summaries: dict[str, dict] = field(default_factory=dict)  # the RESULTS.json ``policies`` entries
    frontier_points: dict[str, list[list[float]]] = field(default_factory=dict)  # sorted [cost, accuracy]
    sweeps: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # (k, n) correct and cost
    timings: dict[str, float] = field(default_factory=dict)  # seconds per policy


def _resolve_policies(policies: Sequence[str] | None, setup: EvaluationSetup,
                      policy_params: dict[str, dict]) -> tuple[dict[str, Policy], dict[str, str]]:
    """The named (or default) policies, built but not fitted, and the defaults skipped with why.

    Every refusal (a name listed twice, always:<m> outside the pool, unknown names or
    parameters) happens here, before any posterior is fitted.
    """
    models = setup.models
    skipped: dict[str, str] = {}
    if policies:
        names = list(policies)
    else:  # a policy that reads stated confidence is left out of the defaults on a log without it
        names, skipped = _without_unusable(default_policy_names(models), setup.ctx.train_log)
    if len(set(names)) != len(names):
        raise InputError(f"policies: a policy is listed twice: {names}")
    outside = [n for n in names if n.startswith("always:") and n[len("always:"):] not in models]
    if outside:  # refused before any posterior is fitted
        raise InputError(f"policies: {outside} name models that are not in the pool {models}")
    built = {name: make_policy(name, **policy_params.get(name, {})) for name in names}  # errors before fitting
    return built, skipped


def _run_policies(built: dict[str, Policy], setup: EvaluationSetup, idx: np.ndarray, frontiers: bool,
                  progress: bool) -> _PolicyRuns:
    """Fit each policy on the train context, run it at its default setting, then along its knob."""
    from tqdm.auto import tqdm

    runs = _PolicyRuns()
    bar = tqdm(list(built), desc="policies", disable=not progress, unit="policy")
    for name in bar:
        bar.set_postfix_str(name)
        t0 = time.perf_counter()
        policy = built[name].fit(setup.ctx)
        runs.fitted[name] = policy
        outcome = run_policy(policy, setup)
        runs.outcomes[name] = outcome
        runs.summaries[name] = _policy_summary(policy, outcome, setup, idx)
        swept = [o for _, o in sweep_knob(policy, setup)] if frontiers and policy.knob is not None else [outcome]
        runs.sweeps[name] = (np.array([o.correct for o in swept]), np.array([o.cost_usd for o in swept]))
        runs.frontier_points[name] = sorted([o.cost_per_question, o.accuracy] for o in swept)
        runs.timings[name] = round(time.perf_counter() - t0, 3)
    return runs


def _policy_summary(policy: Policy, outcome: PolicyOutcome, setup: EvaluationSetup, idx: np.ndarray) -> dict:
    """Accuracy, cost and calls with intervals at the default setting, its knob, bayes-adaptive's combining."""
    summary = summarize_policy(
        outcome.correct, outcome.cost_usd, outcome.n_calls, idx, second_call_rate=policy.may_call_twice
    )
    if policy.name == "bayes-adaptive":  # its decisions of the default run (sweeps work on copies)
        summary["combining"] = combining_summary(policy.decisions_, setup.test_calls().answers())
    if policy.knob is not None:
        summary["knob"] = {policy.knob: jsonable(policy.params.get(policy.knob))}
    return summary


def _compare_to_big(runs: _PolicyRuns, setup: EvaluationSetup, idx: np.ndarray) -> dict:
    """Add ``vs_big`` and the RouteLLM metrics to every policy; returns the ``meta.routellm`` entry."""
    single = _single_model_outcomes(runs.outcomes, setup)
    ref = single[setup.models[-1]]
    for name, o in runs.outcomes.items():
        runs.summaries[name]["vs_big"] = compare_to_reference(o.correct, o.cost_usd, ref.correct, ref.cost_usd, idx)
    return _add_routellm(runs.summaries, runs.sweeps, single, ref, setup, idx)


def _single_model_outcomes(outcomes: dict, setup: EvaluationSetup) -> dict[str, PolicyOutcome]:
    """model -> the outcome of always:<model>, reused from ``outcomes`` or run here once (the
    references of vs_big and the RouteLLM metrics are run even when not reported)."""
    single = {}
    for m in setup.models:
        name = f"always:{m}"
        single[m] = outcomes[name] if name in outcomes else run_policy(make_policy(name).fit(setup.ctx), setup)
    return single


def _reliability_diagnostics(ctx: RoutingContext) -> dict:
    """Convergence report per stage of the reliability models the policies fitted with NUTS."""
    diagnostics = {}
    for stage, rm in ctx.reliability_models().items():
        idata = getattr(rm, "idata", None)
        if idata is not None and "sample_stats" in idata.groups():  # NUTS fits (not ADVI, not stand-ins)
            diagnostics[stage] = convergence_report(idata).to_dict()
    return diagnostics


def _results_meta(setup: EvaluationSetup, runs: _PolicyRuns, test_frac: float, n_boot: int,
                  routellm_meta: dict, skipped: dict[str, str], t_start: float) -> dict:
    """The RESULTS.json ``meta`` entry: split sizes, settings, conventions, diagnostics and timings."""
    return {
        "answer_key_conflicts_excluded": int(setup.answer_key_conflicts_excluded),
        "n_train": int(len(setup.train_question_ids)),
        "n_test": int(len(setup.test_question_ids)),
        "test_frac": float(test_frac),
        "fit_seed": int(setup.ctx.seed),  # the seed of every fit (the top-level seed fixes the split)
        "n_boot": int(n_boot),
        "ci": "95% percentile bootstrap over test questions (paired across policies)",
        "big_model": setup.models[-1],
        "sampler_config": jsonable(setup.ctx.sampler_config),
        "model_config": jsonable(setup.ctx.model_config),
        "aiq_cost_range": _aiq_range(runs.frontier_points),
        "aiq_convention": "area under each frontier's non-decreasing convex hull over the common cost range, "
                          "flat beyond its last point, zero below its first, divided by the range",
        "reliability_diagnostics": _reliability_diagnostics(setup.ctx),
        "routellm": routellm_meta,
        "policies_skipped": skipped,
        "seconds_per_policy": runs.timings,
        "seconds_total": round(time.perf_counter() - t_start, 3),
    }


def _without_unusable(names: list[str], train_log: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """Drop the policies that read stated confidence when the train log has none at all."""
    if train_log["confidence"].notna().any():
        return names, {}
    drop = [n for n in names if getattr(REGISTRY.get(n.split(":")[0]), "needs_confidence", False)]
    return [n for n in names if n not in drop], dict.fromkeys(drop, "the log has no stated confidence")


def _add_routellm(results_policies: dict, sweeps: dict, single: dict[str, PolicyOutcome], ref: PolicyOutcome,
                  setup: EvaluationSetup, idx: np.ndarray) -> dict:
    """RouteLLM's APGR and CPT(50/80/95%) per policy (``routellm``), its savings against
    always-big at equal accuracy and at 95% of it (``savings_vs_big``), and the share of the big
    model's accuracy reached at 25% and 50% of its cost (``accuracy_share_at_big_cost``), all
    on the policy's knob sweep with paired bootstrap intervals.

    Weak and strong are the pool's least and most accurate models on the test questions
    (``single``: model -> always:<model>'s outcome). Returns the ``meta.routellm`` entry.
    """
    acc = {m: o.accuracy for m, o in single.items()}
    weak = min(setup.models, key=lambda m: (acc[m], single[m].cost_per_question))
    strong = max(setup.models, key=lambda m: (acc[m], -single[m].cost_per_question))
    w, s = single[weak], single[strong]
    usable = s.accuracy > w.accuracy and s.cost_per_question > w.cost_per_question
    for name, (correct, cost) in sweeps.items():
        entry = results_policies[name]
        if usable:
            entry["routellm"] = routellm_with_ci(correct, cost, w.correct, w.cost_usd, s.correct, s.cost_usd, idx)
        entry["savings_vs_big"] = {
            "equal_accuracy": savings_at_accuracy(correct, cost, ref.correct, ref.cost_usd, idx, 1.0),
            "95": savings_at_accuracy(correct, cost, ref.correct, ref.cost_usd, idx, 0.95),
        }
        entry["accuracy_share_at_big_cost"] = {  # the batched-routing and PILOT operating points
            f"{100 * f:g}": accuracy_share_at_cost(correct, cost, ref.correct, ref.cost_usd, idx, f) for f in (0.25, 0.5)
        }
    return {
        "weak_model": weak, "strong_model": strong, "defined": bool(usable),
        "why_undefined": None if usable else "the most accurate model is not dearer than the least accurate one",
        "x_axis": "strong-call share at equal cost: (cost - cost_weak) / (cost_strong - cost_weak)",
        "frontier": "each policy's knob sweep; NDCH with the weak model's point, flat beyond its last point",
    }


def _add_aiq_intervals(runs: _PolicyRuns, idx: np.ndarray, reference: str = "bayes-adaptive") -> None:
    """Each policy's entry gets ``aiq_ci95`` and, where ``reference`` ran, ``aiq_<reference>_minus_this_ci95``
    (paired bootstrap over test questions, :func:`aiq_bootstrap`)."""
    intervals = aiq_bootstrap(runs.sweeps, idx, reference=reference)
    for name, entry in runs.summaries.items():
        entry["aiq_ci95"] = intervals["aiq_ci95"].get(name)
        if "difference_ci95" in intervals:
            entry[f"aiq_{reference}_minus_this_ci95"] = intervals["difference_ci95"].get(name)


def _aiq_range(frontiers: dict) -> list[float]:
    costs = [c for pts in frontiers.values() for c, _ in pts]
    return [float(min(costs)), float(max(costs))] if costs else []

