"""The models a user would otherwise pick, trained on the EVAL.md train split of each data set.

Hyperparameters are chosen on the validation split where one exists (Lending Club, PhraseBank, FinFE,
Banking77, StockNet) and fixed beforehand where none does (German Credit's 5-fold CV). Test rows are only
ever predicted, never looked at for a choice. Every baseline returns its predictions keyed by row id and the
figures of `evaluation.evaluators`, so it is scored exactly like finmm.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC

from evaluation import evaluators as ev
from evaluation.data import split

N_JOBS = 1
"""Threads LightGBM and BLAS may use. One: on the shared 2-core CI machine, more threads made a 5-fold
German Credit LightGBM take 55 s instead of a few seconds (spinning threads fighting for the cores)."""


@dataclass
class BaselineResult:
    dataset: str
    model: str
    figures: dict
    predictions: pd.Series | pd.DataFrame | None = field(default=None, repr=False)
    selected: dict = field(default_factory=dict)
    """Hyperparameters picked on validation (or fixed, for German Credit)."""
    wall_s: float = 0.0
    notes: str = ""

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "model": self.model, "figures": self.figures, "selected": self.selected,
                "wall_s": round(self.wall_s, 2), "notes": self.notes,
                "headline": ev.headline(self.dataset, self.figures)}


# ----------------------------------------------------------------------------------------------- features


def feature_columns(rows: pd.DataFrame) -> tuple[list[str], list[str]]:
    return [c for c in rows.columns if c.startswith("num__")], [c for c in rows.columns if c.startswith("cat__")]


def linear_tabular(rows: pd.DataFrame) -> ColumnTransformer:
    """One-hot categoricals (unseen -> all zeros); numerics median-imputed with missing flags, standardised."""
    num, cat = feature_columns(rows)
    return ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), num),
        ("cat", OneHotEncoder(handle_unknown="ignore"), cat),
    ])  # fmt: skip


def tree_tabular(train: pd.DataFrame, *others: pd.DataFrame) -> list[pd.DataFrame]:
    """Numerics as they are (LightGBM handles NaN); categoricals as pandas categories fixed on train (a value
    unseen in train becomes missing)."""
    num, cat = feature_columns(train)
    categories = {c: sorted(train[c].dropna().unique()) for c in cat}
    frames = []
    for part in (train, *others):
        frame = part[num].astype("float64").copy()
        for c in cat:
            seen = part[c].where(part[c].isin(categories[c]))
            frame[c] = pd.Categorical(seen, categories=categories[c])
        frames.append(frame)
    return frames


def _codes(frame: pd.DataFrame) -> np.ndarray:
    """Categoricals -> float codes (NaN for unknown/missing), for stacking with sparse text features."""
    out = frame.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            codes = out[c].cat.codes.astype("float64")
            out[c] = codes.where(codes >= 0, np.nan)
    return out.to_numpy(dtype=np.float64)


def _lgbm(objective: str = "binary", **params):
    import lightgbm as lgb

    base = dict(objective=objective, learning_rate=0.05, num_leaves=31, min_child_samples=40,
                subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0,
                n_estimators=2000, n_jobs=N_JOBS, random_state=0, verbose=-1)
    return lgb.LGBMClassifier(**(base | params))


def _fit_lgbm_early(model, x_train, y_train, x_val, y_val, categorical="auto"):
    """Fit with early stopping on the validation split's log-loss; returns the number of trees kept."""
    import lightgbm as lgb

    model.fit(x_train, y_train, eval_X=(x_val,), eval_y=(y_val,), categorical_feature=categorical,
              callbacks=[lgb.early_stopping(100, verbose=False)])
    return int(model.best_iteration_ or model.n_estimators)


def _series(ids: pd.Series, values: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=np.float64), index=ids.to_numpy())


def _frame(ids: pd.Series, probs: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(np.asarray(probs, dtype=np.float64), index=ids.to_numpy())


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------------------------------------ German


GERMAN_LR_C = 1.0
GERMAN_LGBM = dict(n_estimators=300, learning_rate=0.03, num_leaves=8, min_child_samples=20)
"""Fixed beforehand: German Credit has no validation split, and choosing on the CV folds would tune on test."""


def _cross_validate(rows: pd.DataFrame, fit_predict: Callable[[pd.DataFrame, pd.DataFrame], np.ndarray]) -> pd.Series:
    """Out-of-fold P(bad) of every row: fold k predicted by a model trained on the other folds."""
    parts = []
    for fold in sorted(rows["split"].unique()):
        test, train = rows[rows["split"] == fold], rows[rows["split"] != fold]
        parts.append(_series(test["id"], fit_predict(train, test)))
    return pd.concat(parts)


def german_logistic(rows: pd.DataFrame) -> BaselineResult:
    start = time.perf_counter()

    def fit_predict(train, test):
        model = make_pipeline(linear_tabular(train), LogisticRegression(C=GERMAN_LR_C, max_iter=2000))
        return model.fit(train, train["label"]).predict_proba(test)[:, 1]

    pred = _cross_validate(rows, fit_predict)
    return BaselineResult("german_credit", "logistic regression (one-hot + standardise)",
                          ev.evaluate_german_credit(rows, pred), pred, {"C": GERMAN_LR_C},
                          time.perf_counter() - start, "hyperparameters fixed (no validation split)")


def german_lightgbm(rows: pd.DataFrame) -> BaselineResult:
    start = time.perf_counter()

    def fit_predict(train, test):
        x_train, x_test = tree_tabular(train, test)
        model = _lgbm(**GERMAN_LGBM).fit(x_train, train["label"])
        return model.predict_proba(x_test)[:, 1]

    pred = _cross_validate(rows, fit_predict)
    return BaselineResult("german_credit", "LightGBM (tabular)", ev.evaluate_german_credit(rows, pred), pred,
                          dict(GERMAN_LGBM), time.perf_counter() - start, "hyperparameters fixed (no validation split)")


# ------------------------------------------------------------------------------------------ Lending Club


def _lc_text_vectorizer() -> TfidfVectorizer:
    return TfidfVectorizer(ngram_range=(1, 2), min_df=5, max_features=20000, sublinear_tf=True)


def lending_club_logistic(rows: pd.DataFrame, grid=(0.01, 0.1, 1.0)) -> BaselineResult:
    """Tabular only: one-hot + standardise, C picked on validation AUC."""
    start = time.perf_counter()
    train, val, test = split(rows, "train"), split(rows, "validation"), split(rows, "test")
    prep = linear_tabular(train).fit(train)
    x_train, x_val, x_test = (prep.transform(p) for p in (train, val, test))
    scores = {}
    for c in grid:
        m = LogisticRegression(C=c, max_iter=2000).fit(x_train, train["label"])
        scores[c] = roc_auc_score(val["label"], m.predict_proba(x_val)[:, 1])
    best = max(scores, key=scores.get)
    model = LogisticRegression(C=best, max_iter=2000).fit(x_train, train["label"])
    pred = _series(test["id"], model.predict_proba(x_test)[:, 1])
    return BaselineResult("lending_club", "logistic regression (tabular, one-hot + standardise)",
                          ev.evaluate_lending_club(rows, pred, None), pred,
                          {"C": best, "validation_auc": {str(k): round(v, 4) for k, v in scores.items()}},
                          time.perf_counter() - start)


def lending_club_lightgbm(rows: pd.DataFrame) -> list[BaselineResult]:
    """LightGBM on tabular features alone and on tabular + TF-IDF of the free text (the ablation pair); trees
    picked by early stopping on validation."""
    train, val, test = split(rows, "train"), split(rows, "validation"), split(rows, "test")
    results = []
    start = time.perf_counter()
    x_train, x_val, x_test = tree_tabular(train, val, test)
    model = _lgbm()
    trees = _fit_lgbm_early(model, x_train, train["label"], x_val, val["label"])
    tab = _series(test["id"], model.predict_proba(x_test)[:, 1])
    results.append(BaselineResult("lending_club", "LightGBM (tabular only)", ev.evaluate_lending_club(rows, tab, None),
                                  tab, {"trees": trees}, time.perf_counter() - start))

    start = time.perf_counter()
    vec = _lc_text_vectorizer().fit(train["text"].fillna(""))
    n_tab = x_train.shape[1]
    cat_idx = [i for i, c in enumerate(x_train.columns) if isinstance(x_train[c].dtype, pd.CategoricalDtype)]

    def stack(frame, part):
        return sp.hstack([sp.csr_matrix(np.nan_to_num(_codes(frame), nan=np.nan)),
                          vec.transform(part["text"].fillna(""))], format="csr")

    # Sparse matrices treat absent entries as 0, so NaN codes stay explicit NaN values in the tabular block.
    s_train, s_val, s_test = stack(x_train, train), stack(x_val, val), stack(x_test, test)
    model = _lgbm()
    trees = _fit_lgbm_early(model, s_train, train["label"], s_val, val["label"], categorical=cat_idx)
    both = _series(test["id"], model.predict_proba(s_test)[:, 1])
    figures = ev.evaluate_lending_club(rows, tab, both)
    results.append(BaselineResult("lending_club", "LightGBM (tabular + TF-IDF text)", figures, both,
                                  {"trees": trees, "text_features": len(vec.vocabulary_), "tabular_features": n_tab},
                                  time.perf_counter() - start,
                                  "figures.tabular is the tabular-only LightGBM above (ablation)"))
    return results


# ------------------------------------------------------------------------------------------------- text


def _word() -> TfidfVectorizer:
    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True)


def _word_char():
    from sklearn.pipeline import make_union

    return make_union(_word(), TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2))


def _char() -> TfidfVectorizer:
    return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)


FEATURE_SETS: dict[str, Callable] = {
    "word 1-2-grams": _word,
    "word 1-2-grams + char_wb 2-5-grams": _word_char,
    "char 1-3-grams": _char,
}
TEXT_FEATURES: dict[str, tuple[str, ...]] = {
    "financial_phrasebank": ("word 1-2-grams", "word 1-2-grams + char_wb 2-5-grams"),
    "banking77": ("word 1-2-grams", "word 1-2-grams + char_wb 2-5-grams"),
    "fincuge_finfe": ("char 1-3-grams",),
}
"""Candidate TF-IDF feature sets per data set; the one with the best validation accuracy is kept."""
NUM_CLASSES = {"financial_phrasebank": 3, "fincuge_finfe": 3, "banking77": 77}
TEXT_EVALUATORS = {"financial_phrasebank": ev.evaluate_phrasebank, "fincuge_finfe": ev.evaluate_finfe,
                   "banking77": ev.evaluate_banking77}


def _text_model(kind: str, c: float):
    if kind == "svm":
        return LinearSVC(C=c)
    return LogisticRegression(C=c, max_iter=3000)


def _text_probs(model, x) -> np.ndarray:
    if hasattr(model, "predict_proba"):
        return model.predict_proba(x)
    return _softmax(model.decision_function(x))  # LinearSVC: softmax of margins keeps the arg-max


def tfidf_classifier(dataset: str, rows: pd.DataFrame, kind: str = "logreg", grid: tuple[float, ...] | None = None,
                     features: tuple[str, ...] | None = None) -> BaselineResult:
    """TF-IDF (word n-grams, optionally with char_wb n-grams, for English; character 1-3-grams for Chinese
    FinFE) + logistic regression or a linear SVM; the feature set and C are picked on validation accuracy."""
    start = time.perf_counter()
    grid = grid or ((0.3, 1.0, 3.0) if kind == "svm" else (1.0, 10.0, 100.0))
    features = features or TEXT_FEATURES[dataset]
    train, val, test = split(rows, "train"), split(rows, "validation"), split(rows, "test")
    scores, vectorizers = {}, {}
    for feature_set in features:
        vec = vectorizers[feature_set] = FEATURE_SETS[feature_set]().fit(train["text"])
        x_train, x_val = vec.transform(train["text"]), vec.transform(val["text"])
        for c in grid:
            m = _text_model(kind, c).fit(x_train, train["label"])
            scores[(feature_set, c)] = accuracy_score(val["label"], m.predict(x_val))
    feature_set, best = max(scores, key=scores.get)
    vec = vectorizers[feature_set]
    model = _text_model(kind, best).fit(vec.transform(train["text"]), train["label"])
    probs = _text_probs(model, vec.transform(test["text"]))
    n_classes = NUM_CLASSES[dataset]
    if probs.shape[1] != n_classes:  # a class absent from a (sliced) train split
        full = np.zeros((len(test), n_classes))
        full[:, model.classes_] = probs
        probs = full
    pred = _frame(test["id"], probs)
    name = f"TF-IDF + {'linear SVM' if kind == 'svm' else 'logistic regression'}"
    return BaselineResult(dataset, name, TEXT_EVALUATORS[dataset](rows, pred), pred,
                          {"features": feature_set, "C": best,
                           "validation_accuracy": {f"{f} | C={c}": round(v, 4) for (f, c), v in scores.items()}},
                          time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------- StockNet


def series_features(series: pd.Series) -> pd.DataFrame:
    """From each sample's raw OHLCV window (window_days + 1 trading days before t, oldest first): per day the
    close-to-close log return, open-to-close and high-low range relative to the close, and the log volume
    change; plus the window's total return and return volatility. Nothing from day t."""
    w = np.stack([np.asarray(s, dtype=np.float64) for s in series])  # (N, L+1, 5): open high low close volume
    o, h, lo, c, v = (w[:, :, i] for i in range(5))
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = np.log(c[:, 1:] / c[:, :-1])  # (N, L)
        body = (c - o)[:, 1:] / c[:, 1:]
        rng = (h - lo)[:, 1:] / c[:, 1:]
        vol = np.log((v[:, 1:] + 1) / (v[:, :-1] + 1))
    days = ret.shape[1]
    cols = {}
    for d in range(days):
        lag = days - d  # 1 = the day before t
        cols[f"ret_lag{lag}"], cols[f"body_lag{lag}"] = ret[:, d], body[:, d]
        cols[f"range_lag{lag}"], cols[f"volume_lag{lag}"] = rng[:, d], vol[:, d]
    cols["ret_window"] = ret.sum(axis=1)
    cols["ret_std"] = ret.std(axis=1)
    return pd.DataFrame(cols).replace([np.inf, -np.inf], np.nan)


def stocknet_majority(rows: pd.DataFrame) -> BaselineResult:
    start = time.perf_counter()
    train, test = split(rows, "train"), split(rows, "test")
    majority = int(train["label"].mode()[0])
    pred = _series(test["id"], np.full(len(test), float(majority)))
    return BaselineResult("stocknet", "majority class (of train)", ev.evaluate_stocknet(rows, pred), pred,
                          {"class": majority}, time.perf_counter() - start, "MCC of a constant prediction is 0")


def stocknet_momentum(rows: pd.DataFrame) -> BaselineResult:
    """Rise iff the last day of the window (t-1) closed above the day before it."""
    start = time.perf_counter()
    test = split(rows, "test")
    last = series_features(test["series"])["ret_lag1"].to_numpy()
    pred = _series(test["id"], (np.nan_to_num(last) > 0).astype(float))
    return BaselineResult("stocknet", "momentum (sign of the t-1 return)", ev.evaluate_stocknet(rows, pred), pred,
                          {}, time.perf_counter() - start)


STOCKNET_LGBM_GRID = (
    dict(num_leaves=4, min_child_samples=200, learning_rate=0.02),
    dict(num_leaves=15, min_child_samples=100, learning_rate=0.02),
    dict(num_leaves=31, min_child_samples=50, learning_rate=0.05),
)
"""Candidate LightGBM settings; the one with the best validation accuracy is kept."""


def stocknet_lightgbm(rows: pd.DataFrame, grid: tuple[dict, ...] = STOCKNET_LGBM_GRID) -> BaselineResult:
    """LightGBM on `series_features`; trees by early stopping on validation log-loss, then the setting of
    `STOCKNET_LGBM_GRID` with the best validation accuracy."""
    start = time.perf_counter()
    train, val, test = split(rows, "train"), split(rows, "validation"), split(rows, "test")
    x_train, x_val, x_test = (series_features(p["series"]) for p in (train, val, test))
    fitted = []
    for params in grid:
        model = _lgbm(**params)
        trees = _fit_lgbm_early(model, x_train, train["label"], x_val, val["label"])
        acc = accuracy_score(val["label"], model.predict(x_val))
        fitted.append((acc, trees, params, model))
    acc, trees, params, model = max(fitted, key=lambda f: f[0])
    pred = _series(test["id"], model.predict_proba(x_test)[:, 1])
    return BaselineResult("stocknet", "LightGBM (price-series features)", ev.evaluate_stocknet(rows, pred), pred,
                          {**params, "trees": trees, "features": x_train.shape[1],
                           "validation_accuracy": [round(f[0], 4) for f in fitted]}, time.perf_counter() - start)


# --------------------------------------------------------------------------------------------- registry


def run_baselines(dataset: str, rows: pd.DataFrame) -> list[BaselineResult]:
    """Every baseline of `dataset`, on `rows` (the loader's rows, possibly sliced for a quick run)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=N_JOBS):
        return _run_baselines(dataset, rows)


def _run_baselines(dataset: str, rows: pd.DataFrame) -> list[BaselineResult]:
    if dataset == "german_credit":
        return [german_logistic(rows), german_lightgbm(rows)]
    if dataset == "lending_club":
        return [lending_club_logistic(rows), *lending_club_lightgbm(rows)]
    if dataset in ("financial_phrasebank", "fincuge_finfe"):
        return [tfidf_classifier(dataset, rows)]
    if dataset == "banking77":
        return [tfidf_classifier(dataset, rows), tfidf_classifier(dataset, rows, kind="svm")]
    if dataset == "stocknet":
        return [stocknet_majority(rows), stocknet_momentum(rows), stocknet_lightgbm(rows)]
    raise ValueError(f"no baselines for data set {dataset!r}")
