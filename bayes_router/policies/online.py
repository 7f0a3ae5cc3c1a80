"""Online routing policies: learn from bandit feedback, one question at a time.

A question arrives (:class:`Question`: its pre-call features only); the policy calls one
or more models through a :class:`QuestionCalls` gate, which charges every call its logged
``cost_usd`` and returns that call's outcome and signals (:class:`Observation`) and nothing
else; the policy updates its belief from what it paid for and names the model whose answer
it gives. :class:`OnlineStream` is the only holder of the outcomes, as
:class:`~bayes_router.policies.base.TestCalls` is for the offline harness.

Policies (utility = correct - cost_scale * cost_usd, cost_scale in 1/USD):

* ``thompson``: Thompson sampling; one draw of every model's correctness logit from the
  :class:`~bayes_router.models.online.OnlineReliability` posterior, call the model of
  largest sampled utility.
* ``ucb``: Bayes-UCB; the (1 - 1/t) posterior quantile of P(correct) (t = questions seen).
* ``greedy``: the posterior mean of P(correct) (no exploration).
* ``linucb-budget``: a PILOT-style contextual bandit: per-model ridge regression of
  correctness on question features (intercept, subject one-hot, log length), LinUCB
  bonus, and a budget: a model is eligible only while the spend stays within
  ``budget_fraction`` of the big model's expected spend so far (the cheapest always is).

These are not in the offline policy registry: they learn during the stream rather than
being fitted on a train split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import expit, ndtri

from bayes_router.data.prices import call_cost_usd
from bayes_router.errors import InputError
from bayes_router.models.online import CompletionTokens, OnlineReliability


@dataclass(frozen=True)
class Question:
    """Pre-call features of one arriving question (free to read).

    ``subject``: integer code; ``z_len``: standardized log(question_chars);
    ``prompt_tokens``: (K,) prompt tokens each model would be sent; ``position``: 0-based
    arrival index.
    """

    position: int
    question_id: int
    subject: int
    z_len: float
    prompt_tokens: np.ndarray


@dataclass(frozen=True)
class Observation:
    """What one paid call returns: its outcome and signals (no other model's)."""

    model: int
    correct: bool
    pred: str | None
    parsed: bool
    completion_tokens: int
    cost_usd: float


class QuestionCalls:
    """The gate to one question's calls: every call is charged and reveals only itself."""

    __slots__ = ("_stream", "_position", "called", "cost_usd")

    def __init__(self, stream: OnlineStream, position: int):
        self._stream = stream
        self._position = position
        self.called: list[int] = []
        self.cost_usd = 0.0

    def call(self, model: int) -> Observation:
        """Call pool model ``model`` (its index) on this question; charged its logged cost_usd (USD)."""
        model = int(model)
        if not 0 <= model < self._stream.n_models:
            raise ValueError(f"call: model index {model} is not in the pool of {self._stream.n_models}")
        if model in self.called:
            raise ValueError(f"call: model {model} was already called on this question")
        obs = self._stream._observe(self._position, model)
        self.called.append(model)
        self.cost_usd += obs.cost_usd
        return obs


class OnlineStream:
    """The questions of an online run in arrival order, with every model's logged outcome.

    Built from call-log rows (every question answered by every model of ``models``) and
    an arrival order of question ids. Policies see :meth:`question` (pre-call) and call
    through :meth:`calls`; only the harness reads :meth:`outcome` to score.

    ``z_len`` is standardized with the mean and sd of log(question_chars) over the stream
    (pre-call information); subjects are coded in ``subjects`` order (sorted names).
    """

    def __init__(self, rows: pd.DataFrame, models: list[str], order, subjects: list[str] | None = None):
        self.models = list(models)
        self.n_models = len(self.models)
        order = np.asarray(order, dtype=np.int64)
        rows = rows[rows["model"].isin(self.models)]
        if rows.duplicated(["question_id", "model"]).any():
            raise InputError("online stream: a (question_id, model) pair appears twice")

        def wide(col):
            w = rows.pivot(index="question_id", columns="model", values=col)
            return w.reindex(index=order, columns=self.models)

        correct = wide("correct")
        if correct.isna().any().any():
            bad = correct.index[correct.isna().any(axis=1)][:5].tolist()
            raise InputError(f"online stream: questions {bad} are not answered by every model of {self.models}")
        self.question_ids = order
        self._correct = correct.to_numpy(dtype=bool)
        self._cost = wide("cost_usd").to_numpy(dtype=float)
        self._tokens = wide("completion_tokens").to_numpy(dtype=np.int64)
        self._parsed = wide("parsed").to_numpy(dtype=bool)
        self._pred = wide("pred").astype(object).where(wide("pred").notna(), None).to_numpy()
        self.prompt_tokens = wide("prompt_tokens").to_numpy(dtype=float)
        first = rows.drop_duplicates("question_id").set_index("question_id").reindex(order)
        self.subjects = sorted(rows["subject"].astype(str).unique()) if subjects is None else list(subjects)
        codes = {s: i for i, s in enumerate(self.subjects)}
        unknown = sorted(set(first["subject"].astype(str)) - set(codes))
        if unknown:
            raise InputError(f"online stream: subjects {unknown} are not among {self.subjects}")
        self.subject = first["subject"].astype(str).map(codes).to_numpy(dtype=np.int64)
        loglen = np.log(first["question_chars"].to_numpy(dtype=float).clip(1.0))
        sd = loglen.std()
        self.z_len = (loglen - loglen.mean()) / (sd if sd > 0 else 1.0)

    def __len__(self) -> int:
        return len(self.question_ids)

    def question(self, position: int) -> Question:
        """The pre-call features of the question at ``position`` in the arrival order."""
        return Question(position, int(self.question_ids[position]), int(self.subject[position]),
                        float(self.z_len[position]), self.prompt_tokens[position])

    def calls(self, position: int) -> QuestionCalls:
        """A fresh gate for the calls on the question at ``position``."""
        return QuestionCalls(self, position)

    def _observe(self, position: int, model: int) -> Observation:
        pred = self._pred[position, model]
        return Observation(model, bool(self._correct[position, model]), None if pred is None else str(pred),
                           bool(self._parsed[position, model]), int(self._tokens[position, model]),
                           float(self._cost[position, model]))

    def outcome(self) -> tuple[np.ndarray, np.ndarray]:
        """FOR SCORING ONLY: (correct (n, K) bool, cost_usd (n, K)) in arrival order."""
        return self._correct, self._cost


class OnlinePolicy:
    """Base class: ``route(question, calls) -> model index answered with``; learns inside ``route``.

    ``prices``: (K, 2) USD per million input and output tokens of the pool's models.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, models: list[str], n_subjects: int, prices: np.ndarray, cost_scale: float = 0.0,
                 seed: int = 0, **params):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise InputError(f"online policy '{self.name}': unknown parameter(s) {unknown}; "
                             f"it takes {sorted(self.defaults)}")
        self.params = {**self.defaults, **params}
        self.models = list(models)
        self.n_subjects = int(n_subjects)
        self.prices = np.asarray(prices, dtype=float).reshape(len(self.models), 2)
        self.cost_scale = float(cost_scale)
        self.rng = np.random.default_rng(seed)
        self.tokens = CompletionTokens(len(self.models))

    def expected_cost(self, q: Question) -> np.ndarray:
        """(K,) pre-call expected cost in USD of calling each model on ``q``."""
        return call_cost_usd(q.prompt_tokens, self.tokens.mean, self.prices[:, 0], self.prices[:, 1])

    def route(self, q: Question, calls: QuestionCalls) -> int:
        """Call model(s) on ``q`` through ``calls``, learn from what they returned, and
        return the index of the model whose answer is given."""
        raise NotImplementedError

    def learn(self, q: Question, obs: Observation) -> None:
        """Update the belief with one paid (or warm-start) observation on ``q``."""
        self.tokens.update(obs.model, obs.completion_tokens)


class _PosteriorPolicy(OnlinePolicy):
    """Single call chosen from the :class:`OnlineReliability` posterior, then one update."""

    defaults: ClassVar[dict[str, Any]] = {"process_noise": 0.0, "prior_sd": None, "refit_every": 50}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.posterior = OnlineReliability(len(self.models), self.n_subjects, prior_sd=self.params["prior_sd"],
                                           process_noise=float(self.params["process_noise"]),
                                           refit_every=int(self.params["refit_every"]))

    def success_scores(self, q: Question) -> np.ndarray:
        """(K,) the P(correct) values the policy acts on."""
        raise NotImplementedError

    def route(self, q: Question, calls: QuestionCalls) -> int:
        self.posterior.step()
        utility = self.success_scores(q) - self.cost_scale * self.expected_cost(q)
        m = int(np.argmax(utility))
        self.learn(q, calls.call(m))
        return m

    def learn(self, q: Question, obs: Observation) -> None:
        super().learn(q, obs)
        self.posterior.update(obs.model, q.subject, q.z_len, obs.correct)


class ThompsonPolicy(_PosteriorPolicy):
    name = "thompson"

    def success_scores(self, q: Question) -> np.ndarray:
        mean, cov = self.posterior.logit_belief(q.subject, q.z_len)
        chol = np.linalg.cholesky(cov + 1e-10 * np.eye(len(mean)))
        return expit(mean + chol @ self.rng.standard_normal(len(mean)))


class BayesUCBPolicy(_PosteriorPolicy):
    """Bayes-UCB (Kaufmann, Cappe and Garivier 2012): the 1 - 1/t quantile of each logit."""

    name = "ucb"
    defaults: ClassVar[dict[str, Any]] = {**_PosteriorPolicy.defaults, "scale": 1.0}

    def success_scores(self, q: Question) -> np.ndarray:
        mean, cov = self.posterior.logit_belief(q.subject, q.z_len)
        z = ndtri(1.0 - 1.0 / (q.position + 2.0))
        return expit(mean + float(self.params["scale"]) * z * np.sqrt(np.diag(cov)))


class GreedyPolicy(_PosteriorPolicy):
    name = "greedy"

    def success_scores(self, q: Question) -> np.ndarray:
        return self.posterior.success_mean(q.subject, q.z_len)


class LinUCBBudgetPolicy(OnlinePolicy):
    """PILOT-style LinUCB with a spending budget (see the module docstring).

    ``alpha``: width of the confidence bonus; ``ridge``: prior precision of each model's
    ridge regression; ``budget_fraction``: allowed spend as a fraction of what the big
    model (the pool's last) would have cost on the questions seen so far.
    """

    name = "linucb-budget"
    defaults: ClassVar[dict[str, Any]] = {"alpha": 0.5, "ridge": 1.0, "budget_fraction": 0.5}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        d = self.n_subjects + 2
        k = len(self.models)
        self.a_inv = np.stack([np.eye(d) / float(self.params["ridge"]) for _ in range(k)])
        self.b = np.zeros((k, d))
        self.spent = 0.0
        self.allowance = 0.0

    def features(self, q: Question) -> np.ndarray:
        x = np.zeros(self.n_subjects + 2)
        x[0] = 1.0
        x[1 + q.subject] = 1.0
        x[-1] = q.z_len
        return x

    def route(self, q: Question, calls: QuestionCalls) -> int:
        x = self.features(q)
        theta = np.einsum("kij,kj->ki", self.a_inv, self.b)
        width = np.sqrt(np.einsum("i,kij,j->k", x, self.a_inv, x))
        cost = self.expected_cost(q)
        score = theta @ x + float(self.params["alpha"]) * width - self.cost_scale * cost
        self.allowance += float(self.params["budget_fraction"]) * cost[-1]
        eligible = self.spent + cost <= self.allowance
        eligible[int(np.argmin(cost))] = True
        m = int(np.argmax(np.where(eligible, score, -np.inf)))
        obs = calls.call(m)
        self.spent += obs.cost_usd
        self.learn(q, obs)
        return m

    def learn(self, q: Question, obs: Observation) -> None:
        super().learn(q, obs)
        x, m = self.features(q), obs.model
        ax = self.a_inv[m] @ x  # Sherman-Morrison update of the inverse Gram matrix
        self.a_inv[m] -= np.outer(ax, ax) / (1.0 + x @ ax)
        self.b[m] += float(obs.correct) * x


ONLINE_POLICIES: dict[str, type[OnlinePolicy]] = {
    cls.name: cls for cls in (ThompsonPolicy, BayesUCBPolicy, GreedyPolicy, LinUCBBudgetPolicy)
}
#: The frozen reference: the offline ``bayes-adaptive`` fitted once on a train split.
OFFLINE_PREFIX = "offline:"


def make_online_policy(name: str, models: list[str], n_subjects: int, prices: np.ndarray, cost_scale: float,
                       seed: int, **params) -> OnlinePolicy:
    """A new online policy by name (``thompson``, ``ucb``, ``greedy``, ``linucb-budget``)."""
    if name not in ONLINE_POLICIES:
        known = sorted(ONLINE_POLICIES) + [f"{OFFLINE_PREFIX}<offline policy>"]
        raise InputError(f"unknown online policy '{name}'; known: {', '.join(known)}")
    return ONLINE_POLICIES[name](models, n_subjects, prices, cost_scale, seed, **params)
