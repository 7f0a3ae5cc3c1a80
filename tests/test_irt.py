"""The IRT reliability model (family "irt"): recovery of SIMULATED IRT data, no leak of test
questions into the fit, the quadrature over a new question's difficulty, save/load."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from bayes_router.data.simulate import simulate_question_texts
from bayes_router.errors import InputError
from bayes_router.models.irt.model import IRTReliabilityModel
from bayes_router.models.irt.post import success_given_first
from bayes_router.models.irt.prediction import expected_success, hermite_rule, sigmoid
from bayes_router.models.irt.text import TextFeatures
from bayes_router.models.reliability import ReliabilityModel

N_MODELS, N_SUBJECTS, N_TRAIN, N_TEST, N_COMPONENTS = 4, 3, 300, 60, 3
CANARY = "leakcanaryterm"  # a word only in a test question's text


def simulate_irt(seed: int = 0):
    """A SIMULATED call log from the IRT model itself, its question texts and the true parameters."""
    rng = np.random.default_rng(seed)
    n_q = N_TRAIN + N_TEST
    texts = simulate_question_texts(rng, n_q)
    texts[N_TRAIN] += f" {CANARY} {CANARY}"
    subjects = [f"subject_{i}" for i in range(N_SUBJECTS)]
    questions = pd.DataFrame({"question_id": np.arange(n_q, dtype=np.int64),
                              "subject": [subjects[i % N_SUBJECTS] for i in range(n_q)], "text": texts})
    train_q = questions.iloc[:N_TRAIN]
    X = TextFeatures(N_COMPONENTS).fit(train_q).transform(questions)
    w = rng.normal(0.0, 1.0, X.shape[1])
    s_idx = np.arange(n_q) % N_SUBJECTS
    resid = rng.normal(0.0, 1.0, n_q)
    for s in range(N_SUBJECTS):  # the model's residuals are centered within subject (training questions)
        train_s = (s_idx == s) & (np.arange(n_q) < N_TRAIN)
        resid[s_idx == s] -= resid[train_s].mean()
    difficulty = X @ w + resid
    alpha = rng.normal(0.5, 0.7, N_MODELS)
    beta = rng.normal(0.0, 0.5, N_SUBJECTS)
    beta -= beta.mean()
    gamma = rng.normal(0.0, 0.3, (N_MODELS, N_SUBJECTS))
    gamma = gamma - gamma.mean(0) - gamma.mean(1, keepdims=True) + gamma.mean()
    log_disc = rng.normal(0.0, 0.4, N_MODELS)
    disc = np.exp(log_disc - log_disc.mean())
    ability = alpha[:, None] + beta[None, :] + gamma
    models = [f"model_{i}" for i in range(N_MODELS)]
    rows = []
    for m in range(N_MODELS):
        p = sigmoid(ability[m, s_idx] - disc[m] * difficulty)
        correct = rng.random(n_q) < p
        parsed = correct | (rng.random(n_q) < 0.8)  # a fifth of the wrong answers have no letter
        tokens = np.exp(rng.normal(4.0 + 0.6 * ~correct, 0.4))  # wrong answers ramble
        rows.append(pd.DataFrame({"question_id": questions["question_id"], "model": models[m],
                                  "subject": questions["subject"], "question_chars": [len(t) for t in texts],
                                  "parsed": parsed, "correct": correct & parsed,
                                  "completion_tokens": tokens.round().astype(np.int64)}))
    log = pd.concat(rows, ignore_index=True)
    truth = {"ability": ability, "discrimination": disc, "text_weight": w, "difficulty": difficulty[:N_TRAIN]}
    return log, questions, truth


@pytest.fixture(scope="module")
def fitted():
    log, questions, truth = simulate_irt()
    train = log[log["question_id"] < N_TRAIN]
    # 3 subjects barely identify their spread: the centered subject effects are a funnel there
    rm = ReliabilityModel(stage="pre", family="irt",
                          irt_config={"n_components": N_COMPONENTS, "subject_effects": "non-centered"})
    rm.fit(train, questions=questions, chains=2, draws=300, tune=400, seed=1, progress=False)
    return rm, log, questions, truth


def _covered(draws: np.ndarray, true: np.ndarray) -> np.ndarray:
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
    return (lo <= true) & (true <= hi)


def test_family_dispatch_and_refusals():
    assert isinstance(ReliabilityModel(stage="pre", family="irt"), IRTReliabilityModel)
    assert type(ReliabilityModel(stage="pre")) is ReliabilityModel
    assert ReliabilityModel(stage="pre").model_config["family"] == {"name": "v1"}
    # a configuration (e.g. evaluate --config FILE) chooses the family too
    chosen = ReliabilityModel("pre", model_config={"family": {"name": "irt"}})
    assert isinstance(chosen, IRTReliabilityModel) and chosen.model_config["family"] == {"name": "irt"}
    with pytest.raises(InputError, match="family must be one of"):
        ReliabilityModel("pre", model_config={"family": {"name": "mirt"}})
    with pytest.raises(InputError, match="family"):
        ReliabilityModel(family="mirt")
    with pytest.raises(InputError, match="stage"):
        ReliabilityModel(stage="during", family="irt")
    with pytest.raises(InputError, match="irt_config"):
        IRTReliabilityModel(irt_config={"n_component": 3})


def test_recovers_simulated_parameters_at_nominal_coverage(fitted):
    rm, _, _, truth = fitted
    post = rm.idata.posterior.stack(sample=("chain", "draw"))
    ability = (post["alpha"] + post["beta"] + post["gamma"]).transpose("sample", "model", "subject").values
    cov = {
        "ability": _covered(ability.reshape(ability.shape[0], -1), truth["ability"].ravel()),
        "discrimination": _covered(post["discrimination"].transpose("sample", ...).values, truth["discrimination"]),
        "text_weight": _covered(post["text_weight"].transpose("sample", ...).values, truth["text_weight"]),
        "difficulty": _covered(post["difficulty"].transpose("sample", ...).values, truth["difficulty"]),
    }
    few = np.concatenate([cov["ability"], cov["discrimination"], cov["text_weight"]])
    # 20 parameters at a nominal 90%: 18 expected, 14 or fewer has probability < 1%
    assert few.sum() >= 15, {k: float(v.mean()) for k, v in cov.items()}
    # 300 difficulties: nominal 0.9 (binomial sd 0.017)
    assert 0.82 <= cov["difficulty"].mean() <= 0.97, float(cov["difficulty"].mean())
    assert int(rm.idata.sample_stats["diverging"].sum()) == 0
    true_share = np.var(rm.text_features.transform(rm.questions.iloc[:N_TRAIN]) @ truth["text_weight"]) \
        / np.var(truth["difficulty"])
    share = rm.text_share(prob=0.98)
    assert share["ci98"][0] <= true_share <= share["ci98"][1], (share, true_share)


def test_no_test_question_reaches_the_fit(fitted):
    rm, log, questions, _ = fitted
    # the posterior has difficulties for the training questions only
    assert sorted(rm.idata.posterior["question"].values.tolist()) == list(range(N_TRAIN))
    # the featurizer was fitted on training texts only, although fit() was given every text
    assert CANARY not in set(rm.text_features.to_dataset()["text_vocabulary"].values.tolist())
    alone = TextFeatures(N_COMPONENTS).fit(questions.iloc[:N_TRAIN])
    new = questions.iloc[N_TRAIN:]
    np.testing.assert_allclose(rm.text_features.transform(new), alone.transform(new), atol=1e-12)
    # a test question's prediction reads its text, never its outcomes
    test = log[log["question_id"] >= N_TRAIN].copy()
    before = rm.p_correct(test, n_draws=100).values
    test["correct"] = ~test["correct"]
    test["parsed"] = False
    np.testing.assert_array_equal(rm.p_correct(test, n_draws=100).values, before)
    # ... and it does read the text: another text, another prediction
    other = test.assign(text="simulated w001 w002 w003")
    assert not np.allclose(rm.p_correct(other, n_draws=100).values, before)


def test_new_question_prediction_is_the_text_prior_integral(fitted):
    rm, log, _, _ = fitted
    call = log[(log["question_id"] == N_TRAIN + 5) & (log["model"] == "model_2")]
    P = rm.p_correct(call, n_draws=50).values[:, 0]
    d = rm._posterior_draws()
    sel = np.linspace(0, d["alpha"].shape[0] - 1, 50).round().astype(int)
    X = rm.text_features.transform(call.assign(text=rm.questions.set_index("question_id").loc[N_TRAIN + 5, "text"]))
    s = rm.subjects.index(call["subject"].iloc[0])
    ab = d["alpha"][sel, 2] + d["beta"][sel, s] + d["gamma"][sel, 2, s]
    mu = d["text_weight"][sel] @ X[0]
    z = np.random.default_rng(0).standard_normal(200_000)
    mc = np.array([sigmoid(ab[i] - d["discrimination"][sel, 2][i] * (mu[i] + d["sigma_difficulty"][sel][i] * z)).mean()
                   for i in range(50)])
    np.testing.assert_allclose(P, mc, atol=3e-3)


def test_hermite_rule_matches_monte_carlo():
    points, weights = hermite_rule(24)
    assert abs(weights.sum() - 1.0) < 1e-6
    z = np.random.default_rng(1).standard_normal(1_000_000)
    for a, b in ((0.3, 1.0), (-1.0, 3.0), (2.0, 0.2)):
        assert abs((weights * sigmoid(a - b * points)).sum() - sigmoid(a - b * z).mean()) < 2e-3


def test_save_load_round_trip(fitted, tmp_path):
    rm, log, _, _ = fitted
    test = log[log["question_id"] >= N_TRAIN - 10]  # training and new questions
    path = rm.save(tmp_path / "irt.nc")
    back = ReliabilityModel.load(path)
    assert isinstance(back, IRTReliabilityModel) and back.models == rm.models
    with pytest.raises(InputError, match="text"):  # the texts are not saved: new questions need them again
        back.p_correct(test)
    got = back.p_correct(test, questions=rm.questions).values
    np.testing.assert_allclose(got, rm.p_correct(test).values, rtol=1e-6, atol=1e-7)
    known = back.p_correct(test, questions=rm.questions, known_difficulty=True).values
    np.testing.assert_allclose(known, rm.p_correct(test, known_difficulty=True).values, rtol=1e-6, atol=1e-7)
    # a training question's own posterior difficulty (in-sample) differs from its text prior; new ones do not
    old = test["question_id"].to_numpy() < N_TRAIN
    assert np.abs(known[:, old] - got[:, old]).mean() > 0.02
    np.testing.assert_allclose(known[:, ~old], got[:, ~old], rtol=1e-6)
    d = np.linspace(-2.0, 2.0, 5)[:, None] * np.ones((1, len(test)))  # the likelihoods at five difficulties
    wrong, right = rm.signals.evidence(test).likelihoods(d)
    parsed = test["parsed"].to_numpy()
    assert (right[:, parsed] > 0).all() and (right[:, ~parsed] == 0).all()
    assert np.ptp(np.log(right[:, parsed] / wrong[:, parsed])) > 0.5
    for got_l, want in zip(back.signals.evidence(test).likelihoods(d), (wrong, right), strict=True):
        np.testing.assert_array_equal(got_l, want)


def test_post_call_signals_sharpen_the_call_itself(fitted):
    rm, log, _, _ = fitted
    post = rm.as_stage("post")  # the stages share the posterior; only prediction differs
    assert post.stage == "post" and rm.stage == "pre" and post.idata is rm.idata
    test = log[log["question_id"] >= N_TRAIN]
    y = test["correct"].to_numpy()

    def score(P):
        p = np.clip(P.mean(axis=0), 1e-9, 1 - 1e-9)
        return np.mean(np.where(y, np.log(p), np.log1p(-p)))

    P_post = post.p_correct(test, n_draws=100).values
    assert (P_post[:, ~test["parsed"].to_numpy()] == 0).all()  # the hurdle
    # simulated signals separate right from wrong, so the post-call score must beat the pre-call one
    assert score(P_post) > score(rm.p_correct(test, n_draws=100).values) + 0.05


def test_first_call_evidence_moves_every_other_model(fitted):
    rm, log, _, _ = fitted
    test = log[log["question_id"] >= N_TRAIN]
    first = test[test["model"] == "model_0"]
    cands = test[test["model"] != "model_0"]
    prior = rm.p_correct(cands, n_draws=100).values
    wrong = first.assign(parsed=False)  # no letter: wrong for sure, so the question is likely hard
    right = first.assign(parsed=True, completion_tokens=int(np.exp(4.0)))  # short: likely right
    # the default signals are independent of difficulty given correctness: a likelier-right first
    # answer can only make the question likelier easy, for every draw and candidate
    after_wrong = rm.p_correct_after(wrong, cands, n_draws=100).values
    after_right = rm.p_correct_after(right, cands, n_draws=100).values
    assert (after_wrong < prior + 1e-6).all() and (after_right > prior - 1e-6).all()
    assert (after_right - after_wrong).mean() > 0.03
    # tokens read as ordinal in difficulty too: the simulated tokens do not depend on it, so the fitted
    # slopes are noise and the shift stays the same up to small exceptions
    aware = copy.copy(rm)
    aware.irt_config = {**rm.irt_config, "difficulty_signals": ["completion_tokens"]}
    aware.signals = aware._fit_signals(log[log["question_id"] < N_TRAIN], rm.idata)
    assert "ordinal" in aware.signals.params["model_0"]["signals"]["completion_tokens"]
    shift = aware.p_correct_after(right, cands, n_draws=100).values - prior
    assert shift.mean() > 0.02 and shift.min() > -0.01 and np.abs(shift - (after_right - prior)).mean() < 0.01
    # no evidence (likelihood ratio 1) leaves the prior unchanged
    t = rm._terms(cands, 20, None)
    same = success_given_first(t["ab"], t["disc"], np.zeros(t["ab"].shape[1]), t["ab"], t["disc"], t["mu"],
                               t["sd"], 24)
    np.testing.assert_allclose(same, expected_success(t["ab"], t["disc"], t["mu"], t["sd"], 24), atol=1e-5)


def test_value_of_a_second_call(fitted):
    rm, log, _, _ = fitted
    test = log[log["question_id"] >= N_TRAIN]
    first = test[test["model"] == "model_0"]
    cands = test[test["model"] != "model_0"]
    v = rm.second_call_value(first, cands, n_draws=100)
    # information has no negative value, and never more than the chance of being wrong
    assert (v["gain"] > -1e-9).all() and (v["gain"] <= 1.0 - v["p_first"] + 1e-9).all()
    # the candidate's chance is the draw-weighted p_correct_after (mixing draws by evidence)
    after = rm.p_correct_after(first, cands, n_draws=100).values.mean(axis=0)
    assert np.corrcoef(after, v["p_second"])[0, 1] > 0.99 and np.abs(after - v["p_second"]).max() < 0.05
    # an unparsed first answer is wrong for sure: its P is 0 and any right second call is a gain
    lost = rm.second_call_value(first.assign(parsed=False), cands, n_draws=100)
    assert np.allclose(lost["p_first"], 0.0)
    np.testing.assert_allclose(lost["gain"], lost["p_second"], atol=1e-6)


def test_held_out_scores_agree_on_single_calls(fitted):
    from bayes_router.models.irt import scoring

    rm, log, _, _ = fitted
    test = log[log["question_id"] >= N_TRAIN]
    one = test[test["model"] == "model_1"]  # one call per question: the joint score is the per-call score
    np.testing.assert_allclose(scoring.joint_scores_irt(rm, one, n_draws=100).to_numpy(),
                               scoring.per_call_scores(rm, one, n_draws=100).to_numpy(), atol=2e-5)
    # with every model, the shared difficulty makes the joint score differ from the sum of the marginals
    joint, per_call = scoring.joint_scores_irt(rm, test, n_draws=100), scoring.per_call_scores(rm, test, n_draws=100)
    assert joint.mean() > per_call.mean()
    summary = scoring.paired_difference(joint, per_call)
    assert summary["ci95"][0] < summary["mean"] < summary["ci95"][1] and summary["n_questions"] == N_TEST


def test_routing_context_shares_one_irt_posterior_between_stages(fitted):
    from bayes_router.policies.base import RoutingContext

    rm, log, questions, _ = fitted
    ctx = RoutingContext(train_log=log[log["question_id"] < N_TRAIN], models=rm.models, questions=questions,
                         model_config={"family": {"name": "irt"}})
    ctx.set_reliability("pre", rm)
    post = ctx.reliability("post")  # no second fit: the same posterior, predicting with the signals
    assert post.stage == "post" and post.idata is rm.idata and ctx.reliability("post") is post


def test_a_loaded_irt_posterior_gets_the_contexts_texts(fitted, tmp_path):
    from bayes_router.policies.base import RoutingContext

    rm, log, questions, _ = fitted
    back = ReliabilityModel.load(rm.save(tmp_path / "irt.nc"))
    ctx = RoutingContext(train_log=log[log["question_id"] < N_TRAIN], models=rm.models, questions=questions)
    ctx.set_reliability("pre", back)
    test = log[log["question_id"] >= N_TRAIN]
    np.testing.assert_allclose(ctx.reliability("pre").p_correct(test, n_draws=50).values,
                               rm.p_correct(test, n_draws=50).values, rtol=1e-6, atol=1e-7)


def _routable(log: pd.DataFrame) -> pd.DataFrame:
    """The SIMULATED IRT log completed to the call-log columns a routing run needs: letters (a wrong
    parsed answer picks one of the 3 wrong letters at random), tokens, prices rising with the model
    index (the pool is cheapest first), no stated confidence."""
    rng = np.random.default_rng(3)
    letters = np.array(list("ABCD"))
    answer = letters[log["question_id"].to_numpy() % 4]
    wrong = letters[(log["question_id"].to_numpy() % 4 + rng.integers(1, 4, len(log))) % 4]
    pred = np.where(log["correct"], answer, np.where(log["parsed"], wrong, None))
    price = 1e-6 * 4.0 ** log["model"].str.removeprefix("model_").astype(int).to_numpy()
    prompt = (log["question_chars"] // 4).astype(np.int64)
    return log.assign(answer=answer, pred=pred, source="simulated", n_options=4, prompt_tokens=prompt,
                      cost_usd=price * (prompt + log["completion_tokens"]), confidence=np.nan, latency_s=np.nan)


def test_bayes_adaptive_uses_the_irt_rule_on_an_irt_posterior(fitted):
    from bayes_router.policies import make_policy
    from bayes_router.policies.adaptive_irt import final_of_two
    from bayes_router.policies.base import RoutingContext, TestCalls

    rm, log, questions, _ = fitted
    log = _routable(log)
    test = log[log["question_id"] >= N_TRAIN]
    ctx = RoutingContext(train_log=log[log["question_id"] < N_TRAIN], models=rm.models, questions=questions)
    ctx.set_reliability("pre", rm)
    free = make_policy("bayes-adaptive", cost_scale=0.0, irt_draws=100).fit(ctx)
    assert free.rule_ == "irt" and not hasattr(free, "correlation_")  # no copula on the IRT family
    calls = TestCalls(test, rm.models)
    answers = free.route(calls)
    dec = free.decisions_
    assert len(answers) == N_TEST and dec["n_calls"].max() == 2 and (dec["n_calls"] == 2).mean() > 0.5
    # every call is charged; a second call was made exactly where its net value cleared the threshold
    assert len(calls.calls_made) == dec["n_calls"].sum()
    assert ((dec["voi_second"] > 0) == (dec["n_calls"] == 2)).all()
    np.testing.assert_allclose(dec["gain_second"], dec["voi_second"])  # free calls: the net value is the gain
    # the first call maximizes the pre-call probability when cost is free
    pre = rm.p_correct(calls.precall(), n_draws=100).values.mean(axis=0)
    best = calls.precall().assign(q=pre).sort_values("q").groupby("question_id")["model"].last()
    assert (dec.set_index("question_id")["first_model"] == best.reindex(dec["question_id"]).to_numpy()).all()
    # routing beats the first call alone on the simulated truth
    truth = test.drop_duplicates("question_id").set_index("question_id")["answer"]
    right = answers.to_numpy() == truth.reindex(answers.index).to_numpy()
    first_right = dec["first_answer"].to_numpy() == truth.reindex(dec["question_id"]).to_numpy()
    assert right.mean() >= first_right.mean()
    # a dear second call is never worth it
    dear = make_policy("bayes-adaptive", cost_scale=1e9, irt_draws=100).fit(ctx)
    dear.route(TestCalls(test, rm.models))
    assert (dear.decisions_["n_calls"] == 1).all()
    assert (dear.decisions_["gain_second"] - dear.decisions_["voi_second"] > 1e3).all()  # lambda x cost
    # a lambda sweep reuses what does not depend on lambda (shared cache): the same decisions as a fresh fit
    swept = dear.with_knob(0.0)
    swept.route(TestCalls(test, rm.models))
    assert swept.irt_cache_ is dear.irt_cache_ and len(dear.irt_cache_.gains) >= N_TEST
    pd.testing.assert_frame_equal(swept.decisions_, dec)
    # the final answer: agreement keeps the letter, an unparsed call loses, else the likelier call
    pair = pd.DataFrame({"p00": [0.1, 0.2, 0.3], "p01": [0.2, 0.0, 0.4], "p10": [0.3, 0.8, 0.2], "p11": [0.4, 0.0, 0.1]})
    ans, p = final_of_two(np.array(["A", "B", "C"], dtype=object), np.array(["A", None, "D"], dtype=object), pair, 0.5)
    assert list(ans) == ["A", "B", "D"]
    np.testing.assert_allclose(p, [0.4 / (0.4 + 0.5 * 0.1), 0.8 / (0.8 + 0.2), 0.4 / (0.2 + 0.4 + 0.5 * 0.3)])


def test_the_irt_rule_is_refused_without_an_irt_posterior():
    from bayes_router.policies import make_policy

    policy = make_policy("bayes-adaptive", second_call="irt")
    with pytest.raises(InputError, match="IRT reliability family"):
        policy._second_call_rule("v1")
    with pytest.raises(InputError, match="second_call must be one of"):
        make_policy("bayes-adaptive", second_call="copulas")._second_call_rule("v1")
    assert make_policy("bayes-adaptive")._second_call_rule("v1") == "copula"


def test_joint_correctness_factorizes_without_discrimination():
    """With discrimination 0 the difficulty is irrelevant: the calls are independent given the
    draw, and an unparsed first call (likelihood ratio 0) is wrong for sure."""
    from bayes_router.models.irt.post import joint_correctness

    ab1, ab2 = np.full((1, 2), 0.5), np.full((1, 2), -0.3)
    zero, mu, sd = np.zeros((1, 2)), np.zeros((1, 2)), np.ones((1, 2))
    K = joint_correctness(ab1, zero, np.array([0.0, -np.inf]), ab2, zero, mu, sd, 16, np.array([np.log(2.0), 0.0]))
    p1, p2 = sigmoid(0.5), sigmoid(-0.3)
    expected0 = np.outer([1 - p1, p1], [1 - p2, 2 * p2])
    np.testing.assert_allclose(K[0], expected0, rtol=1e-6)
    np.testing.assert_allclose(K[1, 1], 0.0)
    np.testing.assert_allclose(K[1, 0].sum(), 1 - p1, rtol=1e-6)


def test_classifier_scores_and_the_comparison_table(fitted):
    from bayes_router.models.irt import compare

    _, log, questions, _ = fitted
    train, test = log[log["question_id"] < N_TRAIN], log[log["question_id"] >= N_TRAIN]
    clf = compare.classifier_scores(train, test, questions, [f"model_{i}" for i in range(N_MODELS)], seed=0)
    assert list(clf.index) == sorted(test["question_id"].unique()) and (clf < 0).all()
    # a point predictor scored on N_MODELS calls per question: no better than knowing every outcome,
    # no worse than a coin on every call
    assert clf.mean() > N_MODELS * np.log(0.5) - 0.5

    def summary(mean):
        return {"mean": mean, "ci95": [mean - 0.01, mean + 0.01], "n_questions": N_TEST}

    result = {f: {"held_out_per_call_lpd": summary(m), "held_out_joint_lpd_per_question": summary(3 * m)}
              for f, m in (("v1", -0.65), ("irt", -0.64), ("classifier", -0.66))}
    result["irt_minus_v1"] = {"per_call_lpd": summary(0.01), "joint_lpd_per_question": summary(0.2)}
    result["v1_minus_classifier"] = {"per_call_lpd": summary(0.02), "joint_lpd_per_question": summary(0.03)}
    table = compare.comparison_table(result)
    assert list(table.index) == ["v1", "irt", "classifier"]
    assert table.loc["irt", "joint - v1"].startswith("+0.2000") and table.loc["v1", "per call - v1"] == "0"
    assert table.loc["classifier", "per call - v1"] == "-0.0200 [-0.0300, -0.0100]"  # v1 - classifier, turned
    assert table.loc["irt", "PSIS-LOO elpd (se)"] == "-"


def test_local_dependence_of_the_fit_on_its_own_simulated_training_questions(fitted):
    """Outcomes simulated from the 1-D model itself: no pair of models is flagged, and every pair is
    reported once; a v1 fit is refused."""
    from bayes_router.models.irt.local_dependence import local_dependence

    rm, log, _, _ = fitted
    table = local_dependence(rm, log, n_draws=100)
    assert len(table) == N_MODELS * (N_MODELS - 1) // 2
    assert not table["flagged"].any(), table
    assert table["ppp"].is_monotonic_increasing
    with pytest.raises(InputError, match="IRT family"):
        local_dependence(ReliabilityModel(stage="pre"), log)
