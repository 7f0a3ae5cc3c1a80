"""Trust in routers learned ticket by ticket, when each router's belief depends on the ticket's subject.

:mod:`bayes_router.models.trust` gives the exact trust posterior for one set of router
beliefs about one θ. On a real stream every ticket has a subject, and router r believes
θ_s ~ (its Beta mixture for subject s), θ's of different subjects independent given the
router. The marginal likelihood of router r is then the product over subjects of its
Beta-mixture marginals of that subject's outcomes, so after each ticket (subject s, outcome y)

    log P(y_1..t | r) += log m_{r,s}(k_s + y, n_s - k_s + 1 - y) - log m_{r,s}(k_s, n_s - k_s)
    trust_t[r] ∝ prior[r] P(y_1..t | r)

with m_{r,s}(k, n0) the sequence marginal of :meth:`RouterBelief.log_marginal_likelihood`.
This is exact (conjugate), costs O(routers) per ticket, and with a single subject equals
:func:`bayes_router.models.trust.trust_trajectory`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from bayes_router.errors import InputError
from bayes_router.models.trust import RouterBelief, _check_outcomes, _check_prior
from bayes_router.models.trust_costs import TierCosts


def trust_trajectory_by_subject(beliefs: Mapping[str, Sequence[RouterBelief]], tickets: pd.DataFrame,
                                prior=None) -> pd.DataFrame:
    """Trust after every ticket of a stream whose router beliefs are per subject.

    ``beliefs``: {subject: [router beliefs]} with the same router names, in the same order,
    for every subject (e.g. :func:`~bayes_router.models.trust_data.routers_from_train`);
    ``tickets``: columns ``subject`` and ``y`` (0/1, 1 = the big model was needed), in
    arrival order. Returns one row per ticket: ``ticket`` (1-based), ``subject``, ``y``,
    ``predictive_need_big`` (the model-averaged P(y = 1) for this ticket BEFORE seeing it:
    sum over routers of trust x E[θ_subject | router, earlier tickets]) and one column per
    router with the trust AFTER the ticket.
    """
    if not beliefs:
        raise InputError("beliefs: no subject has router beliefs")
    subjects = list(beliefs)
    names = [r.name for r in beliefs[subjects[0]]]
    for s in subjects:
        if [r.name for r in beliefs[s]] != names:
            raise InputError(f"beliefs: subject '{s}' has routers {[r.name for r in beliefs[s]]}, expected {names}")
    missing = sorted(set(tickets["subject"].astype(str)) - set(subjects))
    if missing:
        raise InputError(f"tickets: subjects {missing[:5]} have no router beliefs")
    log_prior = np.log(_check_prior(beliefs[subjects[0]], prior))
    y = _check_outcomes(tickets["y"].to_numpy(), where="tickets: column 'y'")
    subj = tickets["subject"].astype(str).to_numpy()
    ones = dict.fromkeys(subjects, 0)
    zeros = dict.fromkeys(subjects, 0)
    log_marginal = np.zeros(len(names))
    trust = np.exp(log_prior - logsumexp(log_prior))
    out_trust = np.empty((len(y), len(names)))
    predictive = np.empty(len(y))
    for i, (s, yi) in enumerate(zip(subj, y, strict=True)):
        routers, k, n0 = beliefs[s], ones[s], zeros[s]
        predictive[i] = float(sum(t * r.posterior(k, n0).mean for t, r in zip(trust, routers, strict=True)))
        before = np.array([r.log_marginal_likelihood(k, n0) for r in routers])
        ones[s], zeros[s] = k + int(yi), n0 + 1 - int(yi)
        after = np.array([r.log_marginal_likelihood(ones[s], zeros[s]) for r in routers])
        log_marginal += after - before
        lp = log_prior + log_marginal
        trust = np.exp(lp - logsumexp(lp))
        out_trust[i] = trust
    out = pd.DataFrame({"ticket": np.arange(1, len(y) + 1), "subject": subj, "y": y,
                        "predictive_need_big": predictive})
    for j, n in enumerate(names):
        out[n] = out_trust[:, j]
    return out


def routing_cost_per_window(trajectory: pd.DataFrame, costs: TierCosts, window: int = 100) -> pd.DataFrame:
    """Realized cost (USD) per ``window`` tickets of three ways to route the stream.

    - "always big": the big model on every ticket;
    - "routing by trust": small first (escalating to big when y = 1) when the ticket's
      predictive p makes small + p * big < big, else big; p is the trust-weighted predictive
      BEFORE the ticket (no peeking);
    - "escalate small → medium → big": the cascade, its medium-tier failure at the expected
      rate ``costs.medium_fails_given_small_fails``.

    Also "expected by trust": the sum over the window of what routing by trust expected to
    pay, small + p * big (or big), with a 95% predictive interval ("expected_lo",
    "expected_hi": the number of escalations is a sum of Bernoulli(p) tickets, normal
    approximation). One row per window (costs scaled to ``window`` tickets):
    ``first_ticket``, ``last_ticket``, one column per policy, and the trust in each router at
    the window's end.
    """
    if window < 1:
        raise InputError(f"window must be at least 1 ticket, got {window}")
    y = trajectory["y"].to_numpy(dtype=float)
    p = trajectory["predictive_need_big"].to_numpy(dtype=float)
    small_first = costs.small + p * costs.big < costs.big
    per_ticket = {
        "always big": np.full(len(y), costs.big),
        "routing by trust": np.where(small_first, costs.small + y * costs.big, costs.big),
        "expected by trust": np.where(small_first, costs.small + p * costs.big, costs.big),
        "escalate small → medium → big": costs.small + y * (costs.medium
                                                              + costs.medium_fails_given_small_fails * costs.big),
    }
    routers = [c for c in trajectory.columns if c not in ("ticket", "subject", "y", "predictive_need_big")]
    rows = []
    for start in range(0, len(y), window):
        sl = slice(start, min(start + window, len(y)))
        row = {"first_ticket": start + 1, "last_ticket": sl.stop}
        scale = window / (sl.stop - start)
        row.update({k: float(v[sl].sum() * scale) for k, v in per_ticket.items()})
        half = 1.96 * costs.big * np.sqrt(np.sum(np.where(small_first[sl], p[sl] * (1 - p[sl]), 0.0))) * scale
        row.update({"expected_lo": row["expected by trust"] - half, "expected_hi": row["expected by trust"] + half})
        row.update({f"trust_{r}": float(trajectory[r].iloc[sl.stop - 1]) for r in routers})
        rows.append(row)
    return pd.DataFrame(rows)
