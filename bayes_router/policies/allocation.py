"""Batch allocation of test questions to models from calibrated success probabilities.

Every policy here sees, before any call, a matrix ``P`` (questions x models) of
predicted success (the posterior mean of the PRE-call reliability model fitted
on the train split, ``ctx.reliability("pre")``) and a matrix ``C`` of expected
costs in USD (:func:`~bayes_router.policies.base.expected_cost`). Each question
gets exactly one call.

* ``threshold``: the cheapest model whose predicted success clears ``threshold``
  (where none does, the model with the highest predicted success).
* ``ndch``: the non-decreasing convex hull of (mean expected cost, mean predicted
  accuracy) of the models; a budget on the hull is met by mixing its two bracketing
  models in the ratio that spends it, questions assigned at random (seeded).
* ``ndch-p``: the same hull mixture, but the questions with the highest predicted
  success on the cheaper model of the pair go to it.
* ``mip``: maximize total predicted success subject to total expected cost <= budget,
  one model per question: a multiple-choice knapsack solved exactly by HiGHS
  through ``scipy.optimize.milp``.

Budgets are ``budget_frac`` x the expected cost of sending every test question to
the big model (``models[-1]``); they bind on EXPECTED cost (completion tokens are
unknown before a call), so the realized cost charged can differ a little.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

import numpy as np
import pandas as pd

from bayes_router.policies import register
from bayes_router.policies.base import (
    Policy,
    RoutingContext,
    TestCalls,
    answer_with,
    expected_cost,
    precall_matrix,
)
from bayes_router.study.metrics import nondecreasing_convex_hull

BUDGET_GRID = tuple(np.round(np.arange(0.15, 1.0001, 0.05), 2).tolist())


def allocate_threshold(P: np.ndarray, C: np.ndarray, threshold: float) -> np.ndarray:
    """Per question (row), the index of the cheapest model with ``P >= threshold``; if none,
    the model with the highest P. P, C: (n_questions, n_models). Returns (n_questions,) ints."""
    P, C = np.asarray(P, float), np.asarray(C, float)
    ok = P >= threshold
    c_ok = np.where(ok, C, np.inf)
    pick = np.argmin(c_ok, axis=1)
    none = ~ok.any(axis=1)
    pick[none] = np.argmax(P[none], axis=1)
    return pick


def ndch_mixture(P: np.ndarray, C: np.ndarray, budget_usd: float) -> tuple[int, int, int]:
    """The two hull models bracketing the budget and how many questions go to the dearer one.

    Returns (cheap model index, dear model index, n_dear). Points are (mean expected cost,
    mean predicted success) per model; the per-question budget is budget_usd / n.
    n_dear = floor(r * n) with r the mixing ratio, so the mixture's mean cost stays within
    the budget. Below the hull's cheapest point every question goes to it; above the
    dearest, every question goes to the dearest.
    """
    P, C = np.asarray(P, float), np.asarray(C, float)
    n = P.shape[0]
    hc, _, hidx = nondecreasing_convex_hull(C.mean(axis=0), P.mean(axis=0))
    b = budget_usd / n
    if b <= hc[0] or len(hc) == 1:
        return int(hidx[0]), int(hidx[0]), 0
    if b >= hc[-1]:
        return int(hidx[-1]), int(hidx[-1]), n
    i = int(np.searchsorted(hc, b, side="right") - 1)
    r = (b - hc[i]) / (hc[i + 1] - hc[i])
    return int(hidx[i]), int(hidx[i + 1]), int(np.floor(r * n + 1e-9))


def allocate_ndch(P, C, budget_usd: float, seed: int = 0) -> np.ndarray:
    """NDCH mixture with the dearer model's questions drawn at random (seeded)."""
    n = np.asarray(P).shape[0]
    cheap, dear, n_dear = ndch_mixture(P, C, budget_usd)
    pick = np.full(n, cheap, dtype=int)
    rng = np.random.default_rng(seed)
    pick[rng.choice(n, size=n_dear, replace=False)] = dear
    return pick


def allocate_ndch_p(P, C, budget_usd: float) -> np.ndarray:
    """NDCH mixture; the n - n_dear questions with the highest predicted success on the
    cheaper model stay on it, the rest go to the dearer one (ties by question order)."""
    P = np.asarray(P, float)
    n = P.shape[0]
    cheap, dear, n_dear = ndch_mixture(P, C, budget_usd)
    pick = np.full(n, cheap, dtype=int)
    if n_dear:
        order = np.argsort(P[:, cheap], kind="stable")  # lowest predicted success first
        pick[order[:n_dear]] = dear
    return pick


def allocate_mip(P, C, budget_usd: float, time_limit_s: float = 60.0) -> tuple[np.ndarray, str]:
    """Maximize sum P[q, pick[q]] s.t. sum C[q, pick[q]] <= budget_usd, one model per question.

    Solved with HiGHS via ``scipy.optimize.milp`` (binary x[q, m], one equality per question,
    one budget row). Returns (pick, status). If even the cheapest model everywhere exceeds
    the budget, the problem is infeasible: every question gets its cheapest model and
    status is "infeasible: cheapest everywhere". The returned allocation never spends more
    than the budget when it is feasible (a rounding repair enforces it exactly).
    """
    from scipy import sparse
    from scipy.optimize import Bounds, LinearConstraint, milp

    P, C = np.asarray(P, float), np.asarray(C, float)
    n, m = P.shape
    cheapest = np.argmin(C, axis=1)
    if C[np.arange(n), cheapest].sum() > budget_usd:
        return cheapest, "infeasible: cheapest everywhere"
    if C[np.arange(n), np.argmax(P, axis=1)].sum() <= budget_usd:
        # The budget does not bind: the best model per question (cheapest among ties).
        best = np.where(np.isclose(P, P.max(axis=1, keepdims=True)), C, np.inf).argmin(axis=1)
        return best, "optimal (budget not binding)"
    scale = 1.0 / budget_usd  # budget row of order 1, so HiGHS tolerances are relative
    rows = np.repeat(np.arange(n), m)
    one_per_q = sparse.csr_matrix((np.ones(n * m), (rows, np.arange(n * m))), shape=(n, n * m))
    budget_row = sparse.csr_matrix(C.reshape(1, -1) * scale)
    with _silence_fd1():
        res = milp(
            c=-P.ravel(),
            constraints=[LinearConstraint(one_per_q, 1, 1), LinearConstraint(budget_row, -np.inf, 1.0)],
            integrality=np.ones(n * m),
            bounds=Bounds(0, 1),
            options={"time_limit": time_limit_s, "mip_rel_gap": 1e-6, "disp": False},
        )
    if res.x is None:
        warnings.warn(f"mip: HiGHS found no solution ({res.message}); using the cheapest model everywhere",
                      stacklevel=2)
        return cheapest, f"failed: {res.message}"
    pick = res.x.reshape(n, m).argmax(axis=1)
    pick = _repair_budget(P, C, pick, budget_usd)
    status = "optimal" if res.status == 0 else f"time limit ({res.message})"
    return pick, status


@contextlib.contextmanager
def _silence_fd1():
    """Mute file descriptor 1 during the solve: HiGHS occasionally prints debug lines
    from C++ even with disp=False, which would break the CLI's table."""
    try:
        saved = os.dup(1)
    except OSError:  # no real stdout (embedded interpreters)
        yield
        return
    sys.stdout.flush()  # what Python buffered so far still goes out
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _repair_budget(P, C, pick, budget_usd):
    """Downgrade questions (least predicted success lost per USD saved first) until the
    allocation's expected cost is within the budget; guards against solver tolerances."""
    pick = pick.copy()
    n = len(pick)
    while C[np.arange(n), pick].sum() > budget_usd:
        cur_c, cur_p = C[np.arange(n), pick], P[np.arange(n), pick]
        saving = cur_c[:, None] - C
        loss = cur_p[:, None] - P
        ratio = np.where(saving > 0, np.maximum(loss, 0) / np.where(saving > 0, saving, 1), np.inf)
        q, j = np.unravel_index(np.argmin(ratio), ratio.shape)
        if not np.isfinite(ratio[q, j]):
            break
        pick[q] = j
    return pick


class BatchAllocationPolicy(Policy):
    """Shared machinery: predicted success and expected cost per (test question, model)."""

    def fit(self, ctx: RoutingContext) -> BatchAllocationPolicy:
        super().fit(ctx)
        self._matrices: dict = {}  # shared by with_knob copies: one prediction per test set
        return self

    def matrices(self, calls: TestCalls) -> tuple[np.ndarray, np.ndarray]:
        """(P, C), each (n_test, n_models) in pool order, rows in ``calls.question_ids`` order."""
        key = tuple(calls.question_ids.tolist())
        if key not in self._matrices:
            pre = calls.precall()
            p = self.ctx_.success_proba(pre)
            c = expected_cost(self.ctx_, pre)
            P = precall_matrix(pre, p, self.ctx_.models).reindex(calls.question_ids)
            C = precall_matrix(pre, c, self.ctx_.models).reindex(calls.question_ids)
            self._matrices[key] = (P.to_numpy(), C.to_numpy())
        return self._matrices[key]

    def budget_usd(self, C: np.ndarray) -> float:
        """budget_frac x expected cost (USD) of the big model on every test question."""
        return float(self.params["budget_frac"]) * float(C[:, -1].sum())

    def allocate(self, P: np.ndarray, C: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def route(self, calls: TestCalls) -> pd.Series:
        self._check_fitted()
        P, C = self.matrices(calls)
        pick = self.allocate(P, C)
        choice = pd.Series(np.asarray(self.ctx_.models, dtype=object)[pick], index=calls.question_ids)
        return answer_with(calls, choice)


@register
class ThresholdPolicy(BatchAllocationPolicy):
    """The cheapest model whose predicted success clears ``threshold``."""

    name = "threshold"
    knob = "threshold"
    knob_grid = tuple(np.round(np.arange(0.30, 0.951, 0.05), 2).tolist())
    defaults = {"threshold": 0.7}

    def allocate(self, P, C):
        return allocate_threshold(P, C, float(self.params["threshold"]))


@register
class NDCHPolicy(BatchAllocationPolicy):
    """Random mixture of the two hull models that spends ``budget_frac`` of always-big's cost."""

    name = "ndch"
    knob = "budget_frac"
    knob_grid = BUDGET_GRID
    defaults = {"budget_frac": 0.5}

    def allocate(self, P, C):
        return allocate_ndch(P, C, self.budget_usd(C), seed=self.ctx_.seed)


@register
class NDCHPPolicy(BatchAllocationPolicy):
    """Hull mixture; the questions most likely right on the cheaper model stay on it."""

    name = "ndch-p"
    knob = "budget_frac"
    knob_grid = BUDGET_GRID
    defaults = {"budget_frac": 0.5}

    def allocate(self, P, C):
        return allocate_ndch_p(P, C, self.budget_usd(C))


@register
class MIPPolicy(BatchAllocationPolicy):
    """Exact expected-accuracy maximization under the budget (HiGHS)."""

    name = "mip"
    knob = "budget_frac"
    knob_grid = BUDGET_GRID
    defaults = {"budget_frac": 0.5, "time_limit_s": 60.0}

    def allocate(self, P, C):
        pick, self.status_ = allocate_mip(P, C, self.budget_usd(C), float(self.params["time_limit_s"]))
        return pick
