"""The published routing claims, each tested on the closest real pool: the claims table.

Every claim becomes one row per (claim, pool) of the claims table:

    claim_id, claim (one sentence), pool, log, measured (what was measured, in words),
    value, ci95 ([lo, hi]; None at an end where a target is not reached on some resamples),
    claimed, verdict ("holds" | "does not hold" | "cannot be tested on this data"), why

The numbers come from the RESULTS.json of :func:`bayes_router.study.evaluate.evaluate` on
that pool (policy entries ``vs_big``, ``savings_vs_big``, ``accuracy_share_at_big_cost``,
``routellm``, ``second_call_rate``) and, for the calibration claims, from
:func:`bayes_router.study.stated_confidence.stated_calibration_table`. Intervals are 95%
percentile bootstrap intervals over held-out questions (paired across policies).

Verdict rules, fixed before looking at the numbers:

* a claim of "about x" holds when the 95% interval of the measured counterpart reaches x
  (contains it or lies beyond it in the claimed direction), and does not hold when the
  whole interval falls short of x;
* a claim of "more than x" holds at the point estimate; ``why`` says whether the interval
  also excludes x;
* "well calibrated" means an ECE of at most :data:`WELL_CALIBRATED_ECE` for every model of
  the pool; "the main failure is overconfident wrong answers" means stated confidence
  exceeds accuracy (interval of the gap above 0) for every model of the pool;
* a claim whose setting the data does not contain (a model, a protocol) cannot be tested;
  its row still carries the nearest measurable counterpart, with its interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: ECE (equal-width bins) up to which a predictor counts as "well calibrated".
WELL_CALIBRATED_ECE = 0.05

CLAIMS: dict[str, dict] = {
    "bayes-router": {
        "title": "Bayesian reliability router",
        "claim": "An adaptive Bayesian router over two ~30B MoE models and a ~120B model calls a second "
                 "model on about one third of 4,000 MMLU-Pro questions and is more accurate than always "
                 "using the big model, at slightly higher cost.",
        "claimed": "second call on ~33%; accuracy > always-big; cost slightly above always-big",
    },
    "cascade-savings": {
        "title": "Three-tier confidence cascade: savings",
        "claim": "An 8B -> 70B -> largest Llama cascade that walks up until the stated confidence clears a "
                 "threshold, charged for every tier, saves 60-80% against always-large at equal quality.",
        "claimed": "savings 0.60-0.80 at equal accuracy",
    },
    "stated-calibrated": {
        "title": "Three-tier confidence cascade: calibration",
        "claim": "Self-reported confidence is well calibrated on factual tasks.",
        "claimed": f"ECE <= {WELL_CALIBRATED_ECE} (our threshold for 'well calibrated')",
    },
    "overconfident-wrong": {
        "title": "Three-tier confidence cascade: main failure",
        "claim": "The main calibration failure of self-reported confidence is overconfident wrong answers.",
        "claimed": "stated confidence above accuracy; wrong answers stated high",
    },
    "batched-routing": {
        "title": "Batched routing with a calibrated predictor (MIP/NDCH)",
        "claim": "Batch allocation (MIP, NDCH) with a calibrated p(correct) reaches about 95% of the best "
                 "model's performance at about 50% of its cost.",
        "claimed": "~0.95 of the best model's accuracy at 50% of its cost",
    },
    "routellm": {
        "title": "RouteLLM",
        "claim": "Learned routers save over 2x the cost at 95% of the strong model's quality "
                 "(measured by APGR and CPT).",
        "claimed": "> 2x cheaper than the strong model at 95% of its accuracy",
    },
    "pilot": {
        "title": "PILOT",
        "claim": "PILOT reaches 93% of GPT-4's performance at 25% of its cost.",
        "claimed": "0.93 of GPT-4's accuracy at 25% of its cost",
    },
}

VERDICTS = ("holds", "does not hold", "cannot be tested on this data")


def _row(claim_id: str, pool: str, log: str, measured: str, value, ci, verdict: str, why: str) -> dict:
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    spec = CLAIMS[claim_id]
    ci = None if ci is None else [None if v is None else float(v) for v in ci]
    return {"claim_id": claim_id, "title": spec["title"], "claim": spec["claim"], "pool": pool, "log": log,
            "measured": measured, "value": None if value is None else float(value), "ci95": ci,
            "claimed": spec["claimed"], "verdict": verdict, "why": why}


def _fmt_ci(ci, fmt="{:.3f}") -> str:
    if not ci:
        return "[–]"
    return "[" + ", ".join("not reached" if v is None else fmt.format(v) for v in ci) + "]"


def _pct_ci(ci) -> str:
    """An interval of savings (fractions) in percent; None ends read 'not reached'."""
    return _fmt_ci(None if not ci else [None if v is None else 100 * v for v in ci], "{:.1f}%")


def _big(results: dict) -> tuple[str, dict]:
    name = f"always:{results['models'][-1]}"
    return name, results["policies"][name]


def bayes_router_claim(results: dict, pool: str, log: str, policy: str = "bayes-adaptive") -> dict:
    """The Bayesian reliability router claim at the evaluation's headline cost_scale."""
    if policy not in results["policies"]:
        return _row("bayes-router", pool, log, f"{policy} not evaluated", None, None,
                    "cannot be tested on this data", f"{policy} is not in the results")
    p = results["policies"][policy]
    vs = p["vs_big"]
    rate, diff, ratio = p.get("second_call_rate", 0.0), vs["accuracy_diff"], vs.get("cost_ratio")
    sav = p.get("savings_vs_big", {}).get("equal_accuracy", {})
    measured = (f"{policy} at cost_scale {results['cost_scale']:g}/USD vs always-{results['models'][-1]}: "
                f"second-call rate {rate:.3f}; accuracy difference {diff:+.3f} {_fmt_ci(vs['accuracy_diff_ci95'])}; "
                f"cost ratio {ratio:.2f} {_fmt_ci(vs.get('cost_ratio_ci95'), '{:.2f}')}; along its frontier, "
                f"savings at equal accuracy {_fmt_pct(sav.get('savings'))} {_pct_ci(sav.get('savings_ci95'))}")
    lo = vs["accuracy_diff_ci95"][0]
    more_accurate, cost_ok = diff > 0, ratio is not None and ratio <= 1.5
    if more_accurate and cost_ok:
        verdict = "holds"
        why = ("more accurate than always-big" + (" (interval above 0)" if lo > 0 else " at the point estimate; "
               "the interval includes 0") + f" at {ratio:.2f}x its cost; second-call rate {rate:.2f} vs ~0.33 claimed")
    else:
        verdict = "does not hold"
        why = (("not more accurate than always-big" if not more_accurate else f"cost {ratio:.2f}x always-big, "
                "not 'slightly higher'") + f"; second-call rate {rate:.2f} vs ~0.33 claimed")
    return _row("bayes-router", pool, log, measured, diff, vs["accuracy_diff_ci95"], verdict, why)


def _fmt_pct(x) -> str:
    return "not reached" if x is None else f"{100 * x:.1f}%"


def cascade_savings_claim(results: dict, pool: str, log: str, policy: str = "cascade-confidence",
                          claimed: tuple[float, float] = (0.60, 0.80)) -> dict:
    """Savings of the stated-confidence cascade against always-big at equal accuracy."""
    if policy not in results["policies"]:
        return _row("cascade-savings", pool, log, f"{policy} not evaluated", None, None,
                    "cannot be tested on this data", "the log has no stated confidence for this pool")
    sv = results["policies"][policy]["savings_vs_big"]
    eq, s95 = sv["equal_accuracy"], sv["95"]
    big = results["models"][-1]
    measured = (f"{policy} frontier (stated-confidence threshold) vs always-{big}: savings at equal accuracy "
                f"{_fmt_pct(eq['savings'])} {_pct_ci(eq['savings_ci95'])} (reached on {eq['reached']:.0%} of "
                f"resamples); at 95% of its accuracy {_fmt_pct(s95['savings'])} {_pct_ci(s95['savings_ci95'])}")
    hi = eq["savings_ci95"][1] if eq["savings_ci95"] else None
    if eq["savings"] is not None and hi is not None and hi >= claimed[0]:
        verdict, why = "holds", f"the interval reaches the claimed {claimed[0]:.0%}-{claimed[1]:.0%}"
    else:
        verdict = "does not hold"
        why = ("the cascade never reaches always-big accuracy" if eq["savings"] is None else
               f"savings at equal accuracy at most {_fmt_pct(hi)} (upper end of the interval), below the "
               f"claimed {claimed[0]:.0%}") + f"; at 95% of its accuracy it saves {_fmt_pct(s95['savings'])}"
    return _row("cascade-savings", pool, log, measured, eq["savings"], eq["savings_ci95"], verdict, why)


def calibration_claims(table: pd.DataFrame, pool: str, log: str) -> list[dict]:
    """The two calibration claims from :func:`stated_calibration_table` rows of one pool's models."""
    raw = table[table["predictor"] == "stated"].set_index("model")
    if raw.empty:
        return [_row(c, pool, log, "no stated confidence", None, None, "cannot be tested on this data",
                     "the log has no stated confidence") for c in ("stated-calibrated", "overconfident-wrong")]
    worst = raw["ece_equal_width"].idxmax()
    eces = "; ".join(f"{m} {r.ece_equal_width:.3f} [{r.ece_equal_width_ci95_lo:.3f}, {r.ece_equal_width_ci95_hi:.3f}]"
                     for m, r in raw.iterrows())
    ok = bool((raw["ece_equal_width"] <= WELL_CALIBRATED_ECE).all())
    cal = _row("stated-calibrated", pool, log, f"ECE of raw stated confidence (15 equal-width bins) per model: {eces}",
               raw.loc[worst, "ece_equal_width"],
               [raw.loc[worst, "ece_equal_width_ci95_lo"], raw.loc[worst, "ece_equal_width_ci95_hi"]],
               "holds" if ok else "does not hold",
               (f"every model's ECE <= {WELL_CALIBRATED_ECE}" if ok else f"worst: {worst} ECE "
                f"{raw.loc[worst, 'ece_equal_width']:.3f} > {WELL_CALIBRATED_ECE}")
               + "; MMLU-Pro is reasoning-heavy multiple choice, not only factual recall")
    big = raw.index[-1]
    gaps = "; ".join(f"{m} gap {r.overconfidence_gap:+.3f} {_fmt_ci(r.overconfidence_gap_ci95)}, wrong stated >= 0.9: "
                     f"{r.overconfident_wrong_rate:.2f}" for m, r in raw.iterrows())
    over = bool(all(r.overconfidence_gap_ci95[0] > 0 for _, r in raw.iterrows()))
    ocw = _row("overconfident-wrong", pool, log,
               f"mean stated confidence minus accuracy, and the share of wrong answers stated at >= 0.9: {gaps}",
               raw.loc[big, "overconfident_wrong_rate"], raw.loc[big, "overconfident_wrong_rate_ci95"],
               "holds" if over else "does not hold",
               ("every model states more confidence than its accuracy (interval of the gap above 0)" if over else
                "some model is not overconfident on average") + f"; value: {big}'s overconfident-wrong rate")
    return [cal, ocw]


def batched_claim(results: dict, pool: str, log: str, policies: Sequence[str] = ("mip", "ndch")) -> dict:
    """Share of the best (big) model's accuracy reached at 50% of its cost by MIP / NDCH."""
    have = [p for p in policies if p in results["policies"]]
    if not have:
        return _row("batched-routing", pool, log, "MIP/NDCH not evaluated", None, None,
                    "cannot be tested on this data", "no batch allocator in the results")
    parts = {p: results["policies"][p]["accuracy_share_at_big_cost"]["50"] for p in have}
    main = have[0]
    share, ci = parts[main]["share"], parts[main]["share_ci95"]
    measured = f"share of always-{results['models'][-1]}'s accuracy at 50% of its cost: " + "; ".join(
        f"{p} {v['share']:.3f} {_fmt_ci(v['share_ci95'])}" for p, v in parts.items())
    if ci and ci[1] >= 0.95:
        verdict, why = "holds", f"{main}'s interval reaches 0.95"
    else:
        verdict, why = "does not hold", f"{main}'s interval ends at {ci[1]:.3f}, below 0.95" if ci else "no interval"
    big_is_best = _big_is_most_accurate(results)
    if not big_is_best:
        why += "; note: the big model is not the pool's most accurate"
    return _row("batched-routing", pool, log, measured, share, ci, verdict, why)


def _big_is_most_accurate(results: dict) -> bool:
    accs = {m: results["policies"][f"always:{m}"]["accuracy"] for m in results["models"]
            if f"always:{m}" in results["policies"]}
    return bool(accs) and max(accs, key=accs.get) == results["models"][-1]


def routellm_claim(results: dict, pool: str, log: str, policies: Sequence[str] = ("mf", "knn", "classifier")) -> dict:
    """RouteLLM's claim: savings fold against the strong (big) model at 95% of its accuracy."""
    have = [p for p in policies if p in results["policies"]]
    if not have:
        return _row("routellm", pool, log, "no learned router evaluated", None, None,
                    "cannot be tested on this data", "mf / knn / classifier not in the results")
    main = have[0]
    parts = []
    for p in have:
        e = results["policies"][p]
        s = e["savings_vs_big"]["95"]
        rl = e.get("routellm") or {}
        cpt = (rl.get("cpt") or {}).get("50")
        parts.append(f"{p}: saves {_fmt_pct(s['savings'])} {_pct_ci(s['savings_ci95'])} at 95% of always-big's "
                     f"accuracy; APGR {rl.get('apgr', float('nan')):.3f} {_fmt_ci(rl.get('apgr_ci95'))}; "
                     f"CPT(50%) {'not reached' if cpt is None else f'{cpt:.2f}'}")
    s = results["policies"][main]["savings_vs_big"]["95"]
    lo = s["savings_ci95"][0] if s["savings_ci95"] else None
    if s["savings"] is not None and s["savings"] > 0.5:
        verdict = "holds"
        why = f"{main} saves {_fmt_pct(s['savings'])} (> 50% = 2x)" + (
            "; the interval excludes 2x" if lo is not None and lo > 0.5 else "; the interval includes 2x")
    else:
        verdict = "does not hold"
        why = f"{main} saves {_fmt_pct(s['savings'])} at 95% of the strong model's accuracy, not more than 50% (2x)"
    return _row("routellm", pool, log, "; ".join(parts), s["savings"], s["savings_ci95"], verdict, why)


def pilot_claim(results: dict, pool: str, log: str, policy: str = "bayes-adaptive") -> dict:
    """PILOT's operating point (25% of the reference's cost) on the closest pool: not testable as
    stated (no GPT-4 here, and PILOT learns online from preferences); the counterpart is the share
    of the pool's most accurate model's accuracy that ``policy`` reaches at 25% of its cost."""
    e = results["policies"].get(policy)
    if e is None:
        return _row("pilot", pool, log, f"{policy} not evaluated", None, None, "cannot be tested on this data",
                    "GPT-4 is not in the data, and the counterpart policy was not evaluated")
    s = e["accuracy_share_at_big_cost"]["25"]
    big = results["models"][-1]
    measured = (f"{policy}: share of always-{big}'s accuracy at 25% of its cost {s['share']:.3f} "
                f"{_fmt_ci(s['share_ci95'])}")
    gpt4o = _share_against(results, policy, next((m for m in results["models"] if m.startswith("gpt-4o-2024")), None))
    why = ("GPT-4 is not in the data" + (f" (against gpt-4o, its successor, the share at 25% of gpt-4o's cost is "
                                         f"{gpt4o:.3f}, point estimate)" if gpt4o is not None else "")
           + ", and PILOT is an online budget-constrained bandit trained on preference data, not an offline "
           "router on MMLU-Pro; the counterpart: " + ("reaches" if s["share"] >= 0.93 else "falls short of")
           + " 0.93 at the point estimate")
    return _row("pilot", pool, log, measured, s["share"], s["share_ci95"], "cannot be tested on this data", why)


def _share_against(results: dict, policy: str, model: str | None, cost_fraction: float = 0.25) -> float | None:
    """Point estimate: accuracy of ``policy``'s NDCH at ``cost_fraction`` x always-``model``'s cost,
    as a share of that model's accuracy (None if the model is not in the results)."""
    from bayes_router.study.metrics import hull_accuracy, nondecreasing_convex_hull

    ref = results["policies"].get(f"always:{model}") if model else None
    if ref is None or policy not in results.get("frontiers", {}):
        return None
    pts = np.asarray(results["frontiers"][policy], dtype=float).reshape(-1, 2)
    hc, ha, _ = nondecreasing_convex_hull(pts[:, 0], pts[:, 1])
    return float(hull_accuracy(hc, ha, cost_fraction * ref["cost_per_question"])) / ref["accuracy"]


def claims_table(rows: Sequence[dict]) -> pd.DataFrame:
    """The claims table (one row per claim and pool) as a DataFrame, ci95 split into two columns."""
    df = pd.DataFrame.from_records(list(rows))
    ci = df["ci95"].apply(lambda c: c if c else [None, None])
    df["ci95_lo"] = ci.apply(lambda c: c[0])
    df["ci95_hi"] = ci.apply(lambda c: c[1])
    cols = ["claim_id", "pool", "log", "value", "ci95_lo", "ci95_hi", "claimed", "verdict", "why", "measured", "claim"]
    return df[cols]


def check_claims_rows(rows: Sequence[dict]) -> list[str]:
    """Rows that lack an interval or a verdict (a claims table must carry both on every row)."""
    bad = []
    for r in rows:
        if r.get("verdict") not in VERDICTS:
            bad.append(f"{r.get('claim_id')}/{r.get('pool')}: no verdict")
        ci = r.get("ci95")
        if not ci or all(v is None for v in ci):
            bad.append(f"{r.get('claim_id')}/{r.get('pool')}: no interval")
    return bad


def savings_curve(results: dict, policy: str) -> pd.DataFrame:
    """A policy's frontier as (cost fraction of always-big, accuracy share of always-big), sorted."""
    _, big = _big(results)
    pts = np.asarray(results["frontiers"][policy], dtype=float).reshape(-1, 2)
    return pd.DataFrame({"cost_fraction": pts[:, 0] / big["cost_per_question"],
                         "accuracy_share": pts[:, 1] / big["accuracy"]}).sort_values("cost_fraction")


# ------------------------------------------------------------------ figures
def plot_claim_frontiers(results: dict, policies: Sequence[str], ax=None, cost_fractions: Sequence[float] = (),
                         accuracy_shares: Sequence[float] = (), title: str | None = None):
    """Frontiers of ``policies`` and every always-<model> point, in units of always-big: cost as a
    fraction of its cost, accuracy as a share of its accuracy (so a claim's operating point, e.g.
    0.95 at 0.5, is a point on the plot). Vertical lines at ``cost_fractions``, horizontal lines at
    ``accuracy_shares``. Error bars: 95% intervals of each always-<model> accuracy. Returns ``ax``."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 5))
    _, big = _big(results)
    bc, ba = big["cost_per_question"], big["accuracy"]
    for i, p in enumerate(policies):
        if p in results.get("frontiers", {}):
            curve = savings_curve(results, p)
            ax.plot(curve["cost_fraction"], curve["accuracy_share"], "-o", ms=3, color=f"C{i}", label=p)
    for m in results["models"]:
        e = results["policies"].get(f"always:{m}")
        if e is None:
            continue
        lo, hi = e["accuracy_ci95"]
        ax.errorbar(e["cost_per_question"] / bc, e["accuracy"] / ba, yerr=[[(e["accuracy"] - lo) / ba],
                    [(hi - e["accuracy"]) / ba]], fmt="s", color="k", ms=4, capsize=2)
        ax.annotate(m, (e["cost_per_question"] / bc, e["accuracy"] / ba), fontsize=6, xytext=(3, -8),
                    textcoords="offset points")
    for f in cost_fractions:
        ax.axvline(f, color="grey", ls=":", lw=1)
    for s in accuracy_shares:
        ax.axhline(s, color="grey", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel(f"cost as a fraction of always-{results['models'][-1]} (log scale)")
    ax.set_ylabel(f"accuracy as a share of always-{results['models'][-1]}")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_pgr(results: dict, policies: Sequence[str], ax=None, title: str | None = None):
    """RouteLLM's view: performance gap recovered against the strong-call share at equal cost,
    for each policy's frontier (points), with the random-mixture diagonal. Returns ``ax``."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4.5))
    meta = results["meta"].get("routellm") or {}
    w = results["policies"][f"always:{meta['weak_model']}"]
    s = results["policies"][f"always:{meta['strong_model']}"]
    cw, aw, cs, as_ = w["cost_per_question"], w["accuracy"], s["cost_per_question"], s["accuracy"]
    for i, p in enumerate(policies):
        if p not in results.get("frontiers", {}):
            continue
        pts = np.asarray(results["frontiers"][p], dtype=float).reshape(-1, 2)
        apgr = (results["policies"][p].get("routellm") or {}).get("apgr")
        label = p if apgr is None else f"{p} (APGR {apgr:.2f})"
        ax.plot((pts[:, 0] - cw) / (cs - cw), (pts[:, 1] - aw) / (as_ - aw), "-o", ms=3, color=f"C{i}", label=label)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="random mixture of weak and strong")
    for lvl in (0.5, 0.8, 0.95):
        ax.axhline(lvl, color="grey", ls=":", lw=0.8)
    ax.set_xlabel(f"strong-call share at equal cost ({meta['weak_model']} -> {meta['strong_model']})", fontsize=8)
    ax.set_ylabel("performance gap recovered (PGR)")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def load_pool_results(results_dir, pools: Sequence[str], name: str = "03_routing_policies") -> dict[str, dict]:
    """{pool: RESULTS dict} read from ``results_dir/pools/<pool>/<name>.json`` (notebook 03's
    evaluation of each pool); a pool whose file is missing is left out (and named in a warning)."""
    import json
    import warnings
    from pathlib import Path

    out, missing = {}, []
    for pool in pools:
        path = Path(results_dir) / "pools" / pool / f"{name}.json"
        if path.exists():
            out[pool] = json.loads(path.read_text())
        else:
            missing.append(str(path))
    if missing:
        warnings.warn(f"no evaluation results for {missing}: run notebook 03 on those pools first", stacklevel=2)
    return out


def describe_savings(results: dict, policy: str) -> str:
    """One line: a policy's savings against always-big at equal and at 95% of its accuracy."""
    s = results["policies"][policy]["savings_vs_big"]
    eq, s95 = s["equal_accuracy"], s["95"]
    return (f"{policy}: savings at equal accuracy {_fmt_pct(eq['savings'])} {_pct_ci(eq['savings_ci95'])}, "
            f"at 95% of it {_fmt_pct(s95['savings'])} {_pct_ci(s95['savings_ci95'])}")
