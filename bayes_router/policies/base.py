"""The routing-policy interface shared by every policy, the harness and the CLI.

Three pieces keep evaluations honest:

* :class:`RoutingContext` is everything a policy may *fit* on: the call log of
  the TRAIN questions only (plus question texts, which are pre-call information
  for test questions too), the pool of models, the utility's ``cost_scale`` and
  the sampler settings for Bayesian fits.
* :class:`TestCalls` is the only door to the TEST questions. Pre-call features
  are free (:meth:`TestCalls.precall`); an answer is observed only through
  :meth:`TestCalls.call`, which records the call and charges its realized
  ``cost_usd``. A policy therefore cannot peek at outcomes and cannot call
  without paying. Only the oracle upper bound uses :meth:`TestCalls.peek_correct`.
* :class:`Policy`: ``fit(ctx) -> self``, ``route(calls) -> pd.Series`` (final
  answer letter per test question), and one knob swept for its cost-accuracy
  frontier (``knob_values`` / ``with_knob``).

:func:`expected_cost` is THE pre-call cost estimate (USD) every policy uses:
completion tokens are unknown before a call, so they are replaced by the mean
training completion tokens of the model (by subject where the subject has
enough training rows).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from bayes_router.data.prices import call_cost_usd
from bayes_router.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from bayes_router.models.reliability import ReliabilityModel

#: Columns a policy may see before calling (no answer, pred, correct, tokens out).
PRECALL_COLUMNS: list[str] = [
    "question_id", "model", "subject", "source", "question_chars", "n_options", "prompt_tokens",
]
#: Columns a call returns: what the caller observes (never ``answer`` or ``correct``).
OBSERVED_COLUMNS: list[str] = [
    "question_id", "model", "pred", "parsed", "prompt_tokens", "completion_tokens",
    "cost_usd", "confidence", "latency_s",
]
#: Post-call signals a call also returns where the log has them (the schema's optional columns).
OPTIONAL_OBSERVED_COLUMNS: tuple[str, ...] = ("mean_token_prob", "decisiveness")
#: Minimum training rows of (model, subject) to use the subject's mean completion tokens.
MIN_ROWS_PER_SUBJECT = 5


class TestCalls:
    """Mediates a policy's access to the test questions, so that every call is charged
    and no policy peeks at outcomes.

    Built by the harness from the test rows of the pool (one row per test question
    and model). Pre-call features are free; post-call observations come only
    through :meth:`call`, which records each call with its realized ``cost_usd`` (USD).

    Attributes
    ----------
    models : list[str]
        The pool, cheapest -> biggest.
    question_ids : np.ndarray of int64, shape (n_test,)
        The test questions, sorted.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, test_rows: pd.DataFrame, models: list[str]):
        self.models = list(models)
        rows = test_rows[test_rows["model"].isin(self.models)]
        self.question_ids = np.sort(rows["question_id"].unique().astype(np.int64))
        counts = rows.groupby("question_id")["model"].nunique()
        missing = counts.index[counts < len(self.models)]
        if len(missing):
            raise InputError(
                f"test questions not answered by every model in {self.models}, e.g. {missing[:5].tolist()}"
            )
        if rows.duplicated(["question_id", "model"]).any():
            raise InputError("test rows hold a (question_id, model) pair twice")
        order = {m: i for i, m in enumerate(self.models)}
        rows = rows.assign(_m=rows["model"].map(order)).sort_values(["question_id", "_m"])
        self._rows = rows.drop(columns="_m").set_index(["question_id", "model"], drop=False)
        self._observed = OBSERVED_COLUMNS + [c for c in OPTIONAL_OBSERVED_COLUMNS if c in rows.columns]
        self._calls: list[pd.DataFrame] = []
        self._called: set[tuple[int, str]] = set()
        self._n_per_question: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.question_ids)

    def precall(self) -> pd.DataFrame:
        """One row per (test question, model), cheapest model first within a question:
        question_id, model, subject, source, question_chars, n_options, prompt_tokens
        (known before calling). No answer, pred, correct or completion tokens."""
        return self._rows[PRECALL_COLUMNS].reset_index(drop=True)

    def call(self, question_ids, models) -> pd.DataFrame:
        """Call ``models[i]`` on ``question_ids[i]`` (vectorized) and charge each call.

        Returns the observed columns (question_id, model, pred, parsed, prompt_tokens,
        completion_tokens, cost_usd, confidence, latency_s, and mean_token_prob and
        decisiveness where the log has them), one row per call, in the order asked.
        Calling the same (question, model) twice raises ValueError.
        """
        qids = np.asarray(question_ids, dtype=np.int64).ravel()
        if isinstance(models, str):
            models = [models] * len(qids)
        mods = np.asarray(list(models), dtype=object).ravel()
        if len(qids) != len(mods):
            raise ValueError(f"call: {len(qids)} question ids but {len(mods)} models")
        if len(qids) == 0:
            return pd.DataFrame({c: pd.Series(dtype=self._rows[c].dtype) for c in self._observed})
        keys = list(zip(qids.tolist(), mods.tolist(), strict=True))
        if len(set(keys)) != len(keys):
            raise ValueError("call: the same (question, model) is asked twice in one call")
        again = [k for k in keys if k in self._called]
        if again:
            raise ValueError(f"call: (question, model) already called: {again[:3]}")
        try:
            out = self._rows.loc[keys, self._observed].reset_index(drop=True)
        except KeyError as exc:
            raise ValueError(f"call: not a test question or not a pool model: {exc}") from None
        steps = []
        for q, _ in keys:
            n = self._n_per_question.get(q, 0) + 1
            self._n_per_question[q] = n
            steps.append(n)
        self._called.update(keys)
        self._calls.append(pd.DataFrame({
            "question_id": qids, "model": mods.astype(str), "step": np.asarray(steps, dtype=np.int64),
            "cost_usd": out["cost_usd"].to_numpy(dtype=float),
        }))
        return out

    def peek_correct(self) -> pd.DataFrame:
        """ONLY for the oracle upper bound: (question_id, model, correct, cost_usd) of every test row."""
        return self._rows[["question_id", "model", "correct", "cost_usd"]].reset_index(drop=True)

    def answers(self) -> pd.Series:
        """The correct letter per test question. For the harness's scoring only, never for policies."""
        first = self._rows.groupby(level="question_id")["answer"].first()
        first.index = first.index.astype(np.int64)
        return first

    @property
    def calls_made(self) -> pd.DataFrame:
        """(question_id, model, step, cost_usd) of every call so far; step counts from 1 per question."""
        if not self._calls:
            return pd.DataFrame({
                "question_id": pd.Series(dtype=np.int64), "model": pd.Series(dtype=object),
                "step": pd.Series(dtype=np.int64), "cost_usd": pd.Series(dtype=float),
            })
        return pd.concat(self._calls, ignore_index=True)


@dataclass
class RoutingContext:
    """What a policy may use to fit: TRAIN questions only.

    Attributes
    ----------
    train_log : pd.DataFrame
        Call-log rows of the train questions for the pool's models.
    models : list[str]
        The pool, cheapest -> biggest; ``models[-1]`` is "the big model".
    questions : pd.DataFrame or None
        Question texts (question_id, subject, text) for train AND test ids: the text
        of a test question is pre-call information, its outcome is not.
    cost_scale : float
        lambda in utility = correct - lambda * cost_usd (per USD).
    seed : int
    sampler_config : dict
        The reliability models' ``sampler_config`` (sampler, draws, tune, chains, target_accept, ...;
        see :data:`bayes_router.models.reliability.DEFAULT_SAMPLER_CONFIG`). Chains default to 2 here,
        not to the machine's core count, so a context fits the same posterior on every machine.
    prices : pd.DataFrame or None
        Price table indexed by model (USD per million tokens). None: recovered from
        the train log's own costs (exact for logs priced with ``call_cost_usd``), which
        keeps expected costs consistent with the costs that are charged.
    progress : bool
        Progress bars in fits.
    model_config : dict
        The reliability models' ``model_config`` (priors, parameterizations).
    """

    train_log: pd.DataFrame
    models: list[str]
    questions: pd.DataFrame | None = None
    cost_scale: float = 0.0
    seed: int = 0
    sampler_config: dict = field(default_factory=dict)
    prices: pd.DataFrame | None = None
    progress: bool = False
    model_config: dict = field(default_factory=dict)
    _reliability: dict = field(default_factory=dict, init=False, repr=False)
    _cache: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        self.models = list(self.models)
        if len(self.models) == 0:
            raise InputError("the pool of models is empty")

    @property
    def big_model(self) -> str:
        return self.models[-1]

    @property
    def train_question_ids(self) -> np.ndarray:
        return np.sort(self.train_log["question_id"].unique().astype(np.int64))

    def reliability(self, stage: str) -> ReliabilityModel:
        """The ReliabilityModel of ``stage`` ("pre" or "post"), fitted once on ``train_log``
        and cached, so every policy that needs it shares one posterior."""
        if stage not in ("pre", "post"):
            raise ValueError(f"stage must be 'pre' or 'post', got {stage!r}")
        if stage not in self._reliability:
            from bayes_router.models.reliability import ReliabilityModel

            other = self._reliability.get("post" if stage == "pre" else "pre")
            if getattr(other, "family", "v1") == "irt":  # its stages share one posterior: no second fit
                self._reliability[stage] = other.as_stage(stage)
                return self._reliability[stage]
            sampler_config = {"chains": 2, **{k: v for k, v in self.sampler_config.items() if v is not None}}
            rm = ReliabilityModel(stage=stage, model_config=self.model_config, sampler_config=sampler_config)
            # the IRT family predicts a question's difficulty from its text (train AND test texts are pre-call)
            texts = {"questions": self.questions} if rm.family == "irt" else {}
            rm.fit(self.train_log, seed=self.seed, progress=self.progress, **texts)
            self._reliability[stage] = rm
        return self._reliability[stage]

    def reliability_models(self) -> dict:
        """{stage: ReliabilityModel} of the stages fitted (or set) so far."""
        return dict(self._reliability)

    def set_reliability(self, stage: str, model) -> None:
        """Use an already fitted ReliabilityModel (e.g. loaded from NetCDF) for ``stage``."""
        if getattr(model, "family", "v1") == "irt" and getattr(model, "questions", None) is None:
            model.questions = self.questions  # a saved IRT posterior keeps no texts; new questions need them
        self._reliability[stage] = model

    def success_proba(self, precall_df: pd.DataFrame) -> np.ndarray:
        """Posterior-mean pre-call p(correct), shape (rows,), aligned with ``precall_df``."""
        return self.reliability("pre").p_correct_mean(precall_df)

    def model_prices(self) -> pd.DataFrame:
        """(usd_per_m_input, usd_per_m_output) per pool model, indexed by model."""
        if "prices" not in self._cache:
            if self.prices is not None:
                missing = [m for m in self.models if m not in self.prices.index]
                if missing:
                    raise InputError(f"price table: models {missing} are not in it")
                table = self.prices.loc[self.models, ["usd_per_m_input", "usd_per_m_output"]].astype(float)
            else:
                table = _prices_from_log(self.train_log, self.models)
            self._cache["prices"] = table
        return self._cache["prices"]

    def expected_completion_tokens(self) -> tuple[pd.Series, pd.Series]:
        """(mean train completion tokens per model, per (model, subject) with enough rows)."""
        if "tokens" not in self._cache:
            log = self.train_log
            by_model = log.groupby("model", observed=True)["completion_tokens"].mean()
            g = log.groupby(["model", "subject"], observed=True)["completion_tokens"].agg(["mean", "size"])
            by_subject = g.loc[g["size"] >= MIN_ROWS_PER_SUBJECT, "mean"]
            self._cache["tokens"] = (by_model, by_subject)
        return self._cache["tokens"]


def _prices_from_log(log: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """Recover USD per million input/output tokens per model from logged costs.

    Logged costs are ``call_cost_usd(prompt, completion, p_in, p_out)``; a least-squares
    fit of cost on the two token counts recovers (p_in, p_out) exactly when they vary.
    When the two token counts are collinear in the log, one common price per token is used.
    """
    out = {}
    for m in models:
        rows = log[log["model"] == m]
        if rows.empty:
            raise InputError(f"model '{m}' has no rows in the training log")
        x = rows[["prompt_tokens", "completion_tokens"]].to_numpy(float) / 1e6
        y = rows["cost_usd"].to_numpy(float)
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        fit_ok = np.all(coef >= -1e-9) and np.allclose(x @ coef, y, rtol=1e-4, atol=1e-12)
        if not fit_ok or np.linalg.matrix_rank(x) < 2:
            per_token = y.sum() / max(x.sum(), 1e-300)
            coef = np.array([per_token, per_token])
        out[m] = np.clip(coef, 0.0, None)
    return pd.DataFrame.from_dict(out, orient="index", columns=["usd_per_m_input", "usd_per_m_output"])


def expected_cost(ctx: RoutingContext, precall_df: pd.DataFrame) -> np.ndarray:
    """THE pre-call expected cost (USD) of each (question, model) row of ``precall_df``.

    ``call_cost_usd(prompt_tokens, E[completion tokens], prices of the model)``, where
    E[completion tokens] is the mean over the model's TRAIN calls on the same subject
    (if that subject has at least ``MIN_ROWS_PER_SUBJECT`` train rows), else over all
    its train calls. Returns an array of shape (rows,), aligned with ``precall_df``.
    """
    by_model, by_subject = ctx.expected_completion_tokens()
    prices = ctx.model_prices()
    models = precall_df["model"].astype(str).to_numpy()
    unknown = sorted(set(models) - set(by_model.index))
    if unknown:
        raise InputError(f"expected_cost: models without training rows: {unknown}")
    key = pd.MultiIndex.from_arrays([models, precall_df["subject"].astype(str).to_numpy()])
    tokens = by_subject.reindex(key).to_numpy(dtype=float)
    fallback = by_model.reindex(models).to_numpy(dtype=float)
    tokens = np.where(np.isnan(tokens), fallback, tokens)
    p_in = prices["usd_per_m_input"].reindex(models).to_numpy(float)
    p_out = prices["usd_per_m_output"].reindex(models).to_numpy(float)
    return call_cost_usd(precall_df["prompt_tokens"].to_numpy(float), tokens, p_in, p_out)


def answer_with(calls: TestCalls, choice: pd.Series) -> pd.Series:
    """Call ``choice[q]`` (a model) on each test question q once and return its letters.

    The common last step of single-call policies. ``choice``: index question_id -> model.
    Returns index question_id -> pred (NA where the model gave no parsable answer).
    """
    choice = choice.reindex(calls.question_ids)
    if choice.isna().any():
        raise ValueError("answer_with: some test questions have no chosen model")
    obs = calls.call(choice.index.to_numpy(), choice.to_numpy())
    return pd.Series(obs["pred"].to_numpy(), index=pd.Index(obs["question_id"].to_numpy(), name="question_id"),
                     name="answer")


def precall_matrix(precall_df: pd.DataFrame, values, models: list[str]) -> pd.DataFrame:
    """Pivot per-row ``values`` of ``precall_df`` into a (question x model) frame, columns in pool order."""
    frame = pd.DataFrame({
        "question_id": precall_df["question_id"].to_numpy(), "model": precall_df["model"].to_numpy(),
        "v": np.asarray(values, dtype=float),
    })
    return frame.pivot(index="question_id", columns="model", values="v")[list(models)]


class Policy:
    """A routing policy: ``fit(ctx)`` on train questions, ``route(calls)`` on test questions.

    Subclasses set ``name`` (the registry name), ``defaults`` (every parameter and its
    default), ``knob`` (the parameter its frontier sweeps, or None) and ``knob_grid``
    (the default values swept). Parameters are read from ``self.params``.
    """

    name: ClassVar[str] = ""
    may_call_twice: ClassVar[bool] = False
    knob: ClassVar[str | None] = None
    knob_grid: ClassVar[tuple] = ()
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.defaults) - {"knob_values"})
        if unknown:
            raise InputError(f"policy '{self.name}': unknown parameter(s) {unknown}; "
                             f"it takes {sorted(self.defaults)}")
        self.params: dict[str, Any] = {**self.defaults, **params}
        self.fitted_ = False

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items() if k != "knob_values")
        return f"{type(self).__name__}({args})"

    def fit(self, ctx: RoutingContext) -> Policy:
        """Learn from the train split only. Returns self."""
        self.ctx_ = ctx
        self.fitted_ = True
        return self

    def route(self, calls: TestCalls) -> pd.Series:
        """index question_id -> final answer letter (NA if none). Every call goes through ``calls``."""
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not self.fitted_:
            raise RuntimeError(f"policy '{self.name}' must be fitted before route()")

    def knob_values(self) -> list:
        """The knob values swept for the frontier (``knob_values=`` parameter or the class grid)."""
        if self.knob is None:
            return []
        given = self.params.get("knob_values")
        return list(given) if given is not None else list(self.knob_grid)

    def with_knob(self, value) -> Policy:
        """A copy with the knob set to ``value``, reusing fitted state (no refit)."""
        if self.knob is None:
            raise ValueError(f"policy '{self.name}' has no knob")
        new = copy.copy(self)
        new.params = {**self.params, self.knob: value}
        return new
