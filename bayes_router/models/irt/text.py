"""Low-dimensional text features of a question (its text and lettered options), for the
difficulty prior of the IRT reliability model.

TF-IDF (word unigrams and bigrams, sublinear term frequency) -> truncated SVD (latent semantic
analysis) -> the log length of the text appended -> centered within subject -> scaled to unit
variance. Everything is fitted on the training questions only; a new question is transformed
with those constants. Features are centered within subject because the model already has a
subject effect on ability: a feature whose subject means differ would let the text weights and
the subject effects trade off along a ridge the sampler mixes slowly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_router.errors import InputError

#: Name of the appended length feature.
LENGTH_FEATURE = "log_text_chars"


def _texts(questions: pd.DataFrame) -> pd.Series:
    if "text" not in questions.columns:
        raise InputError("questions: column 'text' is needed for the text features but missing")
    return questions["text"].fillna("").astype(str)


class TextFeatures:
    """TF-IDF -> TruncatedSVD features of question texts, fitted on training questions.

    Parameters
    ----------
    n_components : int
        SVD components kept (capped below the number of training questions and terms).
    max_features : int
        Largest TF-IDF vocabulary (most frequent terms).
    seed : int
        Seed of the randomized SVD.

    After :meth:`fit`: ``names`` (feature names, components then :data:`LENGTH_FEATURE`),
    ``subject_means`` (subject -> feature means before scaling) and ``scale`` (feature sds).
    """

    def __init__(self, n_components: int = 16, max_features: int = 5000, seed: int = 0):
        self.n_components = int(n_components)
        self.max_features = int(max_features)
        self.seed = int(seed)
        self._vectorizer = None
        self.components = None  # (components, terms)
        self.subject_means: dict[str, np.ndarray] = {}
        self.scale = None

    @property
    def names(self) -> list[str]:
        return [f"svd_{i}" for i in range(self.components.shape[0])] + [LENGTH_FEATURE]

    def _vectorizer_for(self, vocabulary=None):
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(max_features=None if vocabulary is not None else self.max_features,
                               ngram_range=(1, 2), min_df=1 if vocabulary is not None else 2,
                               sublinear_tf=True, stop_words="english", vocabulary=vocabulary)

    def fit(self, questions: pd.DataFrame) -> TextFeatures:
        """Fit on ``questions`` (question_id, subject, text): the TRAINING questions only."""
        from sklearn.decomposition import TruncatedSVD

        texts = _texts(questions)
        self._vectorizer = self._vectorizer_for()
        try:
            tfidf = self._vectorizer.fit_transform(texts)
        except ValueError:  # tiny corpora: no term in two documents
            self._vectorizer.set_params(min_df=1)
            tfidf = self._vectorizer.fit_transform(texts)
        k = max(1, min(self.n_components, tfidf.shape[0] - 1, tfidf.shape[1] - 1))
        svd = TruncatedSVD(n_components=k, random_state=self.seed).fit(tfidf)
        self.components = svd.components_.astype(np.float64)
        raw = self._raw(texts)
        subjects = questions["subject"].astype(str).to_numpy()
        self.subject_means = {s: raw[subjects == s].mean(axis=0) for s in np.unique(subjects)}
        centered = raw - np.stack([self.subject_means[s] for s in subjects])
        sd = centered.std(axis=0)
        self.scale = np.where(sd > 1e-12, sd, 1.0)
        return self

    def _raw(self, texts: pd.Series) -> np.ndarray:
        svd = np.asarray(self._vectorizer.transform(texts) @ self.components.T)
        length = np.log1p(texts.str.len().to_numpy(dtype=float))[:, None]
        return np.hstack([svd, length])

    def transform(self, questions: pd.DataFrame) -> np.ndarray:
        """Features of ``questions`` (subject, text), float64 (questions, features): centered within
        subject by the training subject means (an unseen subject: the mean over training subjects)."""
        if self.components is None:
            raise InputError("the text features are not fitted")
        raw = self._raw(_texts(questions))
        pooled = np.mean(list(self.subject_means.values()), axis=0)
        means = np.stack([self.subject_means.get(s, pooled) for s in questions["subject"].astype(str)]) \
            if len(questions) else np.zeros((0, raw.shape[1]))
        return (raw - means) / self.scale

    # ------------------------------------------------------------------ save/load
    def to_dataset(self):
        """The fitted constants as an ``xarray.Dataset`` (vocabulary, idf, components, centering, scale)."""
        import xarray as xr

        vec = self._vectorizer
        vocab = sorted(vec.vocabulary_, key=vec.vocabulary_.get)
        subjects = sorted(self.subject_means)
        return xr.Dataset(
            {"text_vocabulary": ("text_term", np.asarray(vocab, dtype=str)),
             "text_idf": ("text_term", vec.idf_.astype(np.float64)),
             "text_components": (("text_component", "text_term"), self.components),
             "text_subject_means": (("text_subject", "text_feature"),
                                    np.stack([self.subject_means[s] for s in subjects])),
             "text_scale": ("text_feature", self.scale)},
            coords={"text_subject": subjects, "text_feature": self.names},
            attrs={"text_n_components": self.n_components, "text_max_features": self.max_features,
                   "text_seed": self.seed})

    @classmethod
    def from_dataset(cls, ds) -> TextFeatures:
        """The featurizer written by :meth:`to_dataset`."""
        tf = cls(int(ds.attrs["text_n_components"]), int(ds.attrs["text_max_features"]), int(ds.attrs["text_seed"]))
        vocab = [str(t) for t in ds["text_vocabulary"].values]
        tf._vectorizer = tf._vectorizer_for(vocabulary={t: i for i, t in enumerate(vocab)})
        tf._vectorizer.idf_ = np.asarray(ds["text_idf"].values, dtype=np.float64)
        tf.components = np.asarray(ds["text_components"].values, dtype=np.float64)
        means = np.asarray(ds["text_subject_means"].values, dtype=np.float64)
        tf.subject_means = {str(s): means[i] for i, s in enumerate(ds["text_subject"].values)}
        tf.scale = np.asarray(ds["text_scale"].values, dtype=np.float64)
        return tf
