""":class:`IRTReliabilityModel`: the reliability model's ``family="irt"`` (question difficulty as a
latent shared by all models, its prior predicted from the question's text).

Reached as ``ReliabilityModel(stage="pre", family="irt")``; same public API as v1 (``fit``,
``p_correct`` -> (draw, call), ``save``/``load``), plus the question texts: ``fit(log,
questions=...)`` takes a frame (question_id, subject, text) holding at least the training
questions (test questions' texts are pre-call information and may be included; their outcomes
are never read), or the log may carry a ``text`` column.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pandas as pd

from bayes_router.errors import InputError
from bayes_router.models.irt.config import difficulty_parameterization, resolve_irt_config
from bayes_router.models.irt.graph import IRTData, build_irt_graph
from bayes_router.models.irt.post import (
    CallOutcomes,
    SignalModel,
    joint_correctness,
    second_call_value,
    success_given_first,
    success_given_own_signals,
)
from bayes_router.models.irt.prediction import (
    POSTERIOR_VARIABLES,
    UNANSWERABLE_VARIABLES,
    ability_draws,
    difficulty_prior,
    expected_success,
    question_classes,
)
from bayes_router.models.irt.text import TextFeatures
from bayes_router.models.reliability.config import (
    default_chains,
    default_draws,
    resolve_sampler_config,
)
from bayes_router.models.reliability.design import Design, check_log
from bayes_router.models.reliability.model import ReliabilityModel
from bayes_router.models.reliability.parameterization import choose_parameterization
from bayes_router.models.reliability.prediction import thinned

#: Stages the IRT family implements.
IRT_STAGES = ("pre", "post")
#: NUTS target acceptance when ``sampler_config["target_accept"]`` is None.
DEFAULT_TARGET_ACCEPT = {"centered": 0.85, "non-centered": 0.9}


def _text_table(log: pd.DataFrame, questions: pd.DataFrame | None) -> pd.DataFrame:
    """(question_id, subject, text) per question, from ``questions`` or the log's ``text`` column."""
    if questions is not None:
        missing = [c for c in ("question_id", "subject", "text") if c not in questions.columns]
        if missing:
            raise InputError(f"questions: missing columns {missing}")
        return questions[["question_id", "subject", "text"]].drop_duplicates("question_id")
    if "text" in log.columns:
        return log[["question_id", "subject", "text"]].drop_duplicates("question_id")
    raise InputError("the IRT reliability model needs the question texts: pass questions=(question_id, subject, "
                     "text) or a log with a 'text' column")


class IRTReliabilityModel(ReliabilityModel):
    """Bayesian two-parameter IRT model of P(correct) with a text prior on difficulty (see
    :mod:`bayes_router.models.irt.graph`). ``irt_config``: overrides of
    :data:`~bayes_router.models.irt.config.DEFAULT_IRT_CONFIG`; ``model_config`` supplies the
    ability priors (mu_alpha, sigma_alpha, sigma_subject, sigma_interaction) as in v1.

    After :meth:`fit` (or :meth:`load`): ``text_features`` (the fitted :class:`~.text.TextFeatures`),
    ``train_question_ids`` (the questions with a posterior difficulty, in the order of the
    posterior's ``question`` dimension) and v1's ``idata``, ``models``, ``subjects``, ``metadata``.
    """

    family = "irt"

    @property
    def posterior_variables(self) -> tuple:
        """The variables prediction reads: those of the unanswerable class too where the fit has it."""
        posterior = None if self.idata is None else self.idata.posterior
        return POSTERIOR_VARIABLES + tuple(v for v in UNANSWERABLE_VARIABLES if posterior is not None and v in posterior)

    def __init__(self, stage: str = "pre", model_config: dict | None = None, sampler_config: dict | None = None,
                 family: str | None = "irt", irt_config: dict | None = None):
        if stage not in IRT_STAGES:
            raise InputError(f"the IRT reliability model has the stages {IRT_STAGES}, got {stage!r}")
        super().__init__(stage, model_config, sampler_config, family="irt")
        # explicit settings win over those of model_config["family"]["irt"] (a configuration file's)
        self.irt_config = resolve_irt_config({**self.model_config["family"].get("irt", {}), **(irt_config or {})})
        self.text_features: TextFeatures | None = None
        self.train_question_ids = np.zeros(0, dtype=np.int64)
        self.questions: pd.DataFrame | None = None
        self._chosen: dict = {}
        self.signals: SignalModel | None = None

    # ------------------------------------------------------------------- fit
    def _data(self, train_log: pd.DataFrame, questions: pd.DataFrame | None) -> IRTData:
        """Fix the coordinates and text features from the training log; returns the likelihood rows."""
        check_log(train_log, need_correct=True)
        if "question_id" not in train_log.columns:
            raise InputError("call log: column 'question_id' is needed by the IRT model but missing")
        table = _text_table(train_log, questions)
        qids = np.sort(pd.unique(train_log["question_id"].astype(np.int64)))
        train_text = table.set_index("question_id").reindex(qids)
        lacking = qids[train_text["text"].isna().to_numpy()]
        if len(lacking):
            raise InputError(f"questions: no text for {len(lacking)} training questions, e.g. {lacking[:5].tolist()}")
        # the featurizer sees the training questions only: a test question's text must not shape it
        self.text_features = TextFeatures(self.irt_config["n_components"], self.irt_config["max_features"])
        self.text_features.fit(train_text.reset_index())
        X = self.text_features.transform(train_text.reset_index())
        self.design = Design("pre", sorted(train_log["model"].astype(str).unique().tolist()),
                             sorted(train_log["subject"].astype(str).unique().tolist()))
        m_idx, s_idx = self.design.codes(train_log)
        q_idx = np.searchsorted(qids, train_log["question_id"].to_numpy(dtype=np.int64))
        self.train_question_ids = qids
        self.questions = table.reset_index(drop=True)
        q_subject = np.zeros(len(qids), dtype=np.int64)
        q_subject[q_idx] = s_idx  # a question's subject is the one its calls carry
        return IRTData(m_idx, s_idx, q_idx, train_log["correct"].to_numpy(dtype=float), X, q_subject)

    def build_model(self, train_log: pd.DataFrame, questions: pd.DataFrame | None = None, observed=None):
        """The PyMC model for ``train_log`` (fixes this model's coordinates and text features).
        ``observed``: a stand-in for the calls' outcomes (e.g. a shared variable that simulation-based
        calibration swaps between replications); None: the log's ``correct``."""
        data = self._data(train_log, questions)
        kind = difficulty_parameterization(self.irt_config, len(self.models))
        interaction = self.irt_config["interaction_effects"]
        if interaction == "auto":
            interaction = choose_parameterization("interaction_effects", data.model_idx, data.subject_idx,
                                                  np.zeros((len(data.y), 0)), np.ones(len(data.y)), data.y,
                                                  len(self.models), len(self.subjects))["choice"]
        self._chosen = {"difficulty_effects": kind, "interaction_effects": interaction}
        if observed is not None:  # the parameterization stays the one the log's outcomes chose
            data = dataclasses.replace(data, y=observed)
        return build_irt_graph(self.models, self.subjects, self.text_features.names, data, self.model_config,
                               {**self.irt_config, "interaction_effects": interaction}, kind)

    def fit(self, train_log: pd.DataFrame, *, questions: pd.DataFrame | None = None, sampler: str | None = None,
            draws: int | None = None, tune: int | None = None, chains: int | None = None, seed: int = 0,
            progress: bool = True):
        """Sample the posterior given ``train_log`` (training questions only) and the texts
        ``questions``; returns InferenceData (posterior, sample_stats, constant_data with the text
        featurizer, and log_likelihood over the training calls when small enough). Arguments as v1's."""
        given = {"sampler": sampler, "draws": draws, "tune": tune, "chains": chains}
        cfg = resolve_sampler_config({**self.sampler_config, **{k: v for k, v in given.items() if v is not None}})
        graph = self.build_model(train_log, questions)
        kind = self._chosen["difficulty_effects"]
        chains = cfg["chains"] or default_chains()
        draws = cfg["draws"] or default_draws(chains)
        accept = cfg["target_accept"] or DEFAULT_TARGET_ACCEPT[kind]
        idata = self._sample(graph, cfg, draws, chains, accept, seed, progress)
        idata.posterior = idata.posterior.assign_coords(question=self.train_question_ids)
        self.signals = self._fit_signals(train_log, idata)
        self.idata, self._draws_cache = idata, None
        self.metadata = {
            "family": "irt", "parameterization": dict(self._chosen), "target_accept": accept,
            "sampler": cfg["sampler"], "draws": int(draws), "tune": int(cfg["tune"]), "chains": int(chains),
            "seed": int(seed), "train_question_ids": self.train_question_ids.tolist(),
            "n_train_calls": int(len(train_log)),
        }
        self.idata.add_groups({"constant_data": self.text_features.to_dataset()})
        n_cells = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"] * len(train_log)
        if n_cells <= cfg["max_log_likelihood_cells"]:
            self._add_log_likelihood(train_log)
        self._write_attrs()
        return self.idata

    def _fit_signals(self, train_log: pd.DataFrame, idata) -> SignalModel:
        """The post-call signal model; its difficulty-dependent signals are fitted at each training
        question's posterior mean difficulty."""
        difficulty = idata.posterior["difficulty"].mean(("chain", "draw")).to_series()
        per_call = difficulty.reindex(train_log["question_id"].to_numpy(dtype=np.int64)).to_numpy()
        return SignalModel.fit(train_log, difficulty=per_call,
                               difficulty_signals=tuple(self.irt_config["difficulty_signals"]))

    def _add_log_likelihood(self, log: pd.DataFrame) -> None:
        """Pointwise log p(correct_i | theta, difficulty) of every training call, dims (chain, draw,
        call): the in-sample fit, each question at its own posterior difficulty (0 for unparsed calls
        in the post stage, as v1: the hurdle makes them certain)."""
        import xarray as xr

        P = self.p_correct(log, known_difficulty=True).values.astype(np.float64)
        y = log["correct"].to_numpy(dtype=bool)
        ll = np.where(y[None, :], np.log(np.clip(P, 1e-300, 1.0)), np.log1p(-np.clip(P, 0.0, 1 - 1e-16)))
        if self.stage == "post":
            ll[:, ~log["parsed"].to_numpy(dtype=bool)] = 0.0
        post = self.idata.posterior
        da = xr.DataArray(ll.reshape(post.sizes["chain"], post.sizes["draw"], -1), dims=("chain", "draw", "call"),
                          coords={"chain": post.chain, "draw": post.draw, "call": np.arange(len(log))})
        self.idata.add_groups({"log_likelihood": xr.Dataset({"correct": da})})

    def text_share(self, prob: float = 0.9) -> dict:
        """How much of the training questions' difficulty the text predicts: per draw,
        var(text . w) / var(difficulty) over the training questions; posterior mean and central
        ``prob`` interval."""
        d = self._posterior_draws()
        X = self.text_features.transform(self.questions.set_index("question_id")
                                         .loc[self.train_question_ids].reset_index())
        share = (d["text_weight"].astype(np.float64) @ X.T).var(axis=1) / d["difficulty"].astype(np.float64).var(axis=1)
        lo, hi = np.quantile(share, [(1 - prob) / 2, (1 + prob) / 2])
        return {"mean": float(share.mean()), f"ci{int(prob * 100)}": [float(lo), float(hi)]}

    def as_stage(self, stage: str) -> IRTReliabilityModel:
        """This fit for ``stage``: the stages share one posterior (the signals enter at prediction
        only), so a post-call model needs no second fit. A shallow copy; the posterior is shared."""
        if stage not in IRT_STAGES:
            raise InputError(f"the IRT reliability model has the stages {IRT_STAGES}, got {stage!r}")
        other = copy.copy(self)
        other.stage, other._draws_cache = stage, None
        other.model_config = dict(self.model_config)
        return other

    # --------------------------------------------------------------- predict
    def _new_question_features(self, calls: pd.DataFrame, rows: np.ndarray,
                               questions: pd.DataFrame | None) -> np.ndarray:
        """Text features of ``calls`` (all rows; only ``rows`` are computed), from the calls' own
        ``text`` column, else ``questions``, else the texts given at fit."""
        X = np.zeros((len(calls), len(self.text_features.names)))
        if not rows.any():
            return X
        sub = calls.loc[rows, ["subject"]].copy()
        if "text" in calls.columns:
            sub["text"] = calls.loc[rows, "text"].to_numpy()
        else:
            table = questions if questions is not None else self.questions
            if table is None or "question_id" not in calls.columns:
                raise InputError("calls: new questions need their text (a 'text' column, or questions= with "
                                 "question_id and text)")
            lookup = table.drop_duplicates("question_id").set_index("question_id")["text"]
            sub["text"] = lookup.reindex(calls.loc[rows, "question_id"].to_numpy()).to_numpy()
            lacking = calls.loc[rows, "question_id"][sub["text"].isna().to_numpy()]
            if len(lacking):
                raise InputError(f"calls: no text for {lacking.nunique()} new questions, "
                                 f"e.g. {lacking.unique()[:5].tolist()}")
        X[rows] = self.text_features.transform(sub)
        return X

    def _terms(self, calls: pd.DataFrame, n_draws: int | None, questions: pd.DataFrame | None,
               known_difficulty: bool = False) -> dict:
        """Per selected draw and call, float32 (draws, calls): ability ``ab``, discrimination ``disc``,
        difficulty mean ``mu`` and sd ``sd`` (0 on training questions when ``known_difficulty``);
        ``sel`` the draws used; ``classes`` the question classes (:func:`.prediction.question_classes`)."""
        check_log(calls, need_correct=False)
        d = self._posterior_draws()
        sel = thinned(d["alpha"].shape[0], n_draws)
        m_idx, s_idx = self.design.codes(calls)
        if (m_idx < 0).any():
            unseen = sorted(set(calls["model"].astype(str)) - set(self.models))
            raise InputError(f"calls: models not in the IRT fit: {unseen} (it knows {self.models})")
        unseen_subj = s_idx < 0
        if unseen_subj.any():  # one negative code per unseen subject
            codes, _ = pd.factorize(calls["subject"].astype(str).to_numpy()[unseen_subj])
            s_idx[unseen_subj] = -1 - codes
        q_idx = np.full(len(calls), -1, dtype=np.int64)
        if known_difficulty and "question_id" in calls.columns:
            q_idx = pd.Index(self.train_question_ids).get_indexer(calls["question_id"].to_numpy(dtype=np.int64))
        X = self._new_question_features(calls.reset_index(drop=True), q_idx < 0, questions)
        mu, sd = difficulty_prior(d, sel, q_idx, X)
        return {"sel": sel, "ab": ability_draws(d, sel, m_idx, s_idx, len(self.subjects)),
                "disc": d["discrimination"][sel][:, m_idx], "mu": mu, "sd": sd,
                "classes": question_classes(d, sel)}

    def _check_signals(self, calls: pd.DataFrame, what: str) -> None:
        missing = [c for c in ("parsed", "completion_tokens") if c not in calls.columns]
        if missing:
            raise InputError(f"{what}: the post-call IRT model needs the columns {missing}")

    def p_correct(self, calls: pd.DataFrame, n_draws: int | None = None, questions: pd.DataFrame | None = None,
                  known_difficulty: bool = False):
        """Posterior draws of P(correct) for each call: ``xarray.DataArray`` (draw, call), float32.

        Pre stage: P(right) before the call. Post stage: P(right | the call's own signals)
        (:mod:`.post`; unparsed calls get 0). Every question is predicted as a new one: its
        difficulty is integrated over its text prior (Gauss-Hermite quadrature per draw), so a
        training question's prediction is what a router would see, not one sharpened by its own
        outcomes. ``known_difficulty=True`` uses a training question's posterior difficulty instead
        (the in-sample fit: pointwise log-likelihood, PSIS-LOO). ``correct`` is never read. Texts of new questions come
        from a ``text`` column of ``calls``, else ``questions``, else those given at fit. Models must
        have been seen in training; an unseen subject gets population draws."""
        import xarray as xr

        t = self._terms(calls, n_draws, questions, known_difficulty)
        nodes = self.irt_config["quadrature_nodes"]
        if self.stage == "post":
            self._check_signals(calls, "calls")
            P = success_given_own_signals(t["ab"], t["disc"], t["mu"], t["sd"], self.signals.evidence(calls), nodes,
                                          t["classes"])
        else:
            P = expected_success(t["ab"], t["disc"], t["mu"], t["sd"], nodes, t["classes"])
        return xr.DataArray(P, dims=("draw", "call"), coords={"draw": t["sel"], "call": calls.index.to_numpy()},
                            name="p_correct")

    def p_correct_after(self, first: pd.DataFrame, candidates: pd.DataFrame, n_draws: int | None = None,
                        questions: pd.DataFrame | None = None):
        """P(each candidate call right | the first call's signals on its question), (draw, call).

        ``first``: one observed call per question (model, subject, question_id, parsed,
        completion_tokens, confidence where logged); ``candidates``: calls of other models on those
        questions. The first call's likelihood ratio reweights the question's difficulty (see
        :mod:`.post`), so a first answer that looks wrong lowers every candidate's chance. Either
        stage's fit can answer this (the signal model is fitted with every fit)."""
        import xarray as xr

        t1, t2, ev1 = self._pair_terms(first, candidates, n_draws, questions)
        P = success_given_first(t1["ab"], t1["disc"], ev1, t2["ab"], t2["disc"], t1["mu"], t1["sd"],
                                self.irt_config["quadrature_nodes"], t1["classes"])
        return xr.DataArray(P, dims=("draw", "call"), coords={"draw": t2["sel"], "call": candidates.index.to_numpy()},
                            name="p_correct")

    def _pair_terms(self, first: pd.DataFrame, second: pd.DataFrame, n_draws: int | None,
                    questions: pd.DataFrame | None) -> tuple[dict, dict, object]:
        """The first call's terms aligned with each row of ``second`` (same question), the second
        calls' terms and the first calls' evidence (:meth:`SignalModel.evidence`), aligned too."""
        self._check_signals(first, "first")
        pos = pd.Index(first["question_id"].to_numpy()).get_indexer(second["question_id"].to_numpy())
        if (pos < 0).any() or first["question_id"].duplicated().any():
            raise InputError("first: exactly one call per question of the second calls")
        t1 = self._terms(first, n_draws, questions)
        t1 = {k: (v if k in ("sel", "classes") else v[:, pos]) for k, v in t1.items()}
        return t1, self._terms(second, n_draws, questions), self.signals.evidence(first).take(pos)

    def second_call_value(self, first: pd.DataFrame, candidates: pd.DataFrame, n_draws: int | None = None,
                          questions: pd.DataFrame | None = None) -> pd.DataFrame:
        """Value of information of a second call, per candidate (index of ``candidates``): columns
        ``p_first`` (P(first right | its signals)), ``p_second`` (P(candidate right | first's
        signals)) and ``gain`` (expected accuracy of calling the candidate and keeping the likelier
        answer, minus ``p_first``; see :func:`.post.second_call_value`). Call the candidate with the
        largest ``gain - lambda * expected cost`` when it is positive. Arguments as :meth:`p_correct_after`."""
        t1, t2, ev1 = self._pair_terms(first, candidates, n_draws, questions)
        outcomes = CallOutcomes.of(self.signals, candidates["model"].astype(str).to_numpy())
        v = second_call_value(t1["ab"], t1["disc"], ev1, t2["ab"], t2["disc"], t1["mu"], t1["sd"], outcomes,
                              classes=t1["classes"])
        return pd.DataFrame(v, index=candidates.index)

    def pair_correctness(self, first: pd.DataFrame, second: pd.DataFrame, n_draws: int | None = None,
                         questions: pd.DataFrame | None = None) -> pd.DataFrame:
        """P(y1, y2 | both calls' signals) of two calls on one question, per row of ``second``
        (index kept): columns ``p00``, ``p01``, ``p10``, ``p11`` (y1 y2; they sum to 1). Both calls
        share the question's difficulty (:func:`.post.joint_correctness`). ``first``: one call per
        question; both frames need the signal columns (parsed, completion_tokens, confidence where
        logged). Which answer to keep when the letters differ is the larger of ``p10`` and ``p01``."""
        self._check_signals(second, "second")
        t1, t2, ev1 = self._pair_terms(first, second, n_draws, questions)
        K = joint_correctness(t1["ab"], t1["disc"], ev1, t2["ab"], t2["disc"], t1["mu"], t1["sd"],
                              self.irt_config["quadrature_nodes"], self.signals.evidence(second), t1["classes"])
        K = K.reshape(len(second), 4) / K.sum(axis=(1, 2))[:, None]
        return pd.DataFrame(K, index=second.index, columns=["p00", "p01", "p10", "p11"])

    # ------------------------------------------------------------- save/load
    def _write_attrs(self) -> None:
        super()._write_attrs()
        meta = json.loads(self.idata.attrs["bayes_router_reliability"])
        meta.update({"family": "irt", "irt_config": self.irt_config, "signals": self.signals.to_json()})
        self.idata.attrs["bayes_router_reliability"] = json.dumps(meta)

    @classmethod
    def from_idata(cls, idata, meta: dict) -> IRTReliabilityModel:
        """The model of a posterior written by :meth:`save` (``meta``: its configuration attribute)."""
        from bayes_router.models.reliability.config import RETIRED_SAMPLER_KEYS

        sampler_config = {k: v for k, v in meta["sampler_config"].items() if k not in RETIRED_SAMPLER_KEYS}
        rm = cls(stage=meta["stage"], model_config=meta["model_config"], sampler_config=sampler_config,
                 irt_config=meta.get("irt_config"))
        rm.idata = idata.load() if hasattr(idata, "load") else idata
        rm.design = Design(meta["stage"], list(meta["models"]), list(meta["subjects"]))
        rm.metadata = dict(meta.get("metadata", {}))
        rm.train_question_ids = np.asarray(rm.idata.posterior["question"].values, dtype=np.int64)
        rm.text_features = TextFeatures.from_dataset(rm.idata.constant_data)
        rm.signals = SignalModel.from_json(meta["signals"])
        return rm

    # ------------------------------------------------------------ v1 only
    def plan(self, train_log):
        raise InputError("plan() belongs to the v1 reliability model; the IRT family has build_model()")

    def p_correct_model(self, calls):
        raise InputError("p_correct_model() belongs to the v1 reliability model")

    def prior_predictive_accuracy(self, train_log, samples: int = 500, seed: int = 0):
        raise InputError("prior_predictive_accuracy() belongs to the v1 reliability model")

    def __repr__(self) -> str:
        state = f"{len(self.models)} models, {len(self.subjects)} subjects, {len(self.train_question_ids)} " \
                "questions" if self.idata is not None else "unfitted"
        return f"ReliabilityModel(stage={self.stage!r}, family='irt', {state})"
