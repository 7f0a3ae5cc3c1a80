"""The reliability model's ``family="irt"``: a Bayesian two-parameter IRT model with text.

    logit P(model m right on question q) = ability[m, subject(q)] - discrimination[m] * difficulty[q]
    difficulty[q] ~ Normal(text[q] . w, sigma_difficulty)

Abilities are v1's partially pooled model, subject and model x subject effects; discriminations
are positive with geometric mean 1; ``text[q]`` is TF-IDF -> truncated SVD of the question and
its options plus its log length, centered within subject, fitted on training questions only
(:mod:`.text`). A training question's difficulty is estimated from every model's answers; a new
question's difficulty is integrated over its text prior (Gauss-Hermite quadrature per draw).

Use::

    rm = ReliabilityModel(stage="pre", family="irt")   # or model_config={"family": {"name": "irt"}}
    rm.fit(train_log, questions=texts)                 # texts: question_id, subject, text
    rm.p_correct(calls)                                # (draw, call), every question as a new one
    rm.p_correct_after(first_calls, other_calls)       # given the first call's signals (:mod:`.post`)
    rm.save(path); ReliabilityModel.load(path)

Modules: :mod:`.config` (IRT settings), :mod:`.text`, :mod:`.graph` (PyMC), :mod:`.prediction`
(NumPy quadrature), :mod:`.post` (signal model and the difficulty update), :mod:`.model`,
:mod:`.scoring` (held-out log scores), :mod:`.compare` (v1 against IRT on one split).
"""
