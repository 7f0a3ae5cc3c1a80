"""``bayes-router trust (--example | --routers ROUTERS.yaml --outcomes OUTCOMES.csv) -o TRUST.json``."""

from __future__ import annotations

import argparse

HELP = "learn trust in routers (Beta-mixture beliefs about θ) from 0/1 outcomes; exact posterior"
DESCRIPTION = """Learn which router to trust from observed outcomes (exact conjugate posterior).

Each router believes θ = P(a ticket needs the big model) is a mixture of Beta
distributions. A Categorical with prior `prior` (uniform if absent) picks the
router that is right; outcomes y_i ~ Bernoulli(θ), 1 = the big model was needed.
Prints and writes the posterior trust P(router | y), each router's updated
Beta mixture (weights and [alpha, beta] per component), the trust after every
outcome, and the cost per 100 tickets of "always big", "routing by trust" and
"escalate small -> medium -> big" at the stated per-call costs (USD).

  --example                  the reference example: three routers (simple, medium,
                             complex) and 22 outcomes (eleven 0s, one 1, eight 0s, two 1s)
  --routers ROUTERS.yaml     routers: {NAME: [{weight: W, alpha: A, beta: B}, ...], ...}
                             prior:   {NAME: P, ...}        (optional; uniform if absent)
  --outcomes OUTCOMES.csv    a column `y` of 0/1, in ticket order

With --pymc the same model is also sampled with NUTS in PyMC (the router and judge
choices marginalized) and the Monte Carlo trust estimates with their standard
errors are added under "pymc".
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--example", action="store_true", help="use the three-router reference example")
    src.add_argument("--routers", metavar="ROUTERS.yaml", help="routers' Beta-mixture beliefs (and optional prior)")
    p.add_argument("--outcomes", metavar="OUTCOMES.csv", help="CSV with a 0/1 column `y` (required with --routers)")
    p.add_argument("-o", "--output", required=True, metavar="TRUST.json", help="JSON file to write")
    p.add_argument("--cost-small", type=float, default=0.0002, metavar="USD", help="per-call cost of the small model")
    p.add_argument("--cost-medium", type=float, default=0.0010, metavar="USD", help="per-call cost of the medium model")
    p.add_argument("--cost-big", type=float, default=0.0040, metavar="USD", help="per-call cost of the big model")
    p.add_argument("--medium-fails", type=float, default=0.5, metavar="P",
                   help="cascade assumption: P(medium fails | small failed) (default 0.5)")
    p.add_argument("--pymc", action="store_true", help="also sample the model with NUTS and report MC estimates")
    p.add_argument("--seed", type=int, default=0, help="random seed for the cost intervals and NUTS")


def run(args: argparse.Namespace) -> int:
    from bayes_router.data.io import write_json
    from bayes_router.errors import InputError
    from bayes_router.models.trust import TrustModel, trust_posterior, trust_trajectory
    from bayes_router.models.trust_costs import TierCosts, cost_impact
    from bayes_router.models.trust_data import (
        load_outcomes_csv,
        load_routers_yaml,
        reference_example,
    )

    if args.example:
        if args.outcomes:
            raise InputError("--outcomes is used with --routers, not with --example")
        routers, outcomes = reference_example()
        prior = None
    else:
        if not args.outcomes:
            raise InputError("--routers needs --outcomes OUTCOMES.csv")
        routers, prior = load_routers_yaml(args.routers)
        outcomes = load_outcomes_csv(args.outcomes)
    costs = TierCosts(args.cost_small, args.cost_medium, args.cost_big, args.medium_fails)

    post = trust_posterior(routers, outcomes, prior)
    result = post.to_dict()
    traj = trust_trajectory(routers, outcomes, prior)
    result["trajectory"] = {r.name: traj[r.name].round(10).tolist() for r in routers}
    table = cost_impact(post, costs, n_tickets=100, seed=args.seed)
    result["cost_per_100_tickets"] = {
        "costs_usd_per_call": {"small": costs.small, "medium": costs.medium, "big": costs.big},
        "medium_fails_given_small_fails": costs.medium_fails_given_small_fails,
        "routing_by_trust_sends_small_first": table.attrs["small_first"],
        "policies": {
            name: {"expected_cost_usd": row.expected_cost_usd,
                   "cost_ci95": [row.cost_ci95_lo, row.cost_ci95_hi],
                   "calls_per_ticket": row.calls_per_ticket}
            for name, row in table.iterrows()
        },
    }

    print(f"{post.n_ones + post.n_zeros} outcomes ({post.n_ones} ones, {post.n_zeros} zeros)")
    print(f"{'router':<16}{'prior':>8}{'trust':>10}  posterior components (weight: Beta(alpha, beta))")
    for r, p0, t, q in zip(routers, post.prior, post.trust, post.posteriors, strict=True):
        comps = ", ".join(f"{w:.3f}: Beta({a:g}, {b:g})" for w, a, b in zip(q.weights, q.alpha, q.beta, strict=True))
        print(f"{r.name:<16}{p0:>8.4f}{t:>10.4f}  {comps}")

    if args.pymc:
        model = TrustModel(routers, prior)
        model.fit(outcomes, random_seed=args.seed)
        summ = model.trust_summary()
        result["pymc"] = {
            "trust": summ["trust"].to_dict(), "trust_mcse": summ["trust_mcse"].to_dict(),
            "weights": summ["weights"].to_dict(), "diagnostics": model.diagnostics(),
        }
        print("PyMC (NUTS, choices marginalized): " + ", ".join(
            f"{n} {row.trust:.4f} ± {row.trust_mcse:.4f}" for n, row in summ.iterrows()))

    print(f"cost per 100 tickets (USD; small {costs.small:g}, medium {costs.medium:g}, big {costs.big:g} per call):")
    for name, row in table.iterrows():
        print(f"  {name:<32}{row.expected_cost_usd:>9.4f}  95% interval [{row.cost_ci95_lo:.4f}, "
              f"{row.cost_ci95_hi:.4f}]")
    write_json(args.output, result)
    print(f"wrote {args.output}")
    return 0
