"""Evaluation of a declared data set (issue 16): the same baselines, figures and report as a built-in one,
chosen by its task's head kind and its modalities instead of its name.

- binary_risk: test AUC, KS, Brier, ECE with the ROC and reliability curves (`credit_figures`), against
  logistic regression and LightGBM on the tabular columns and TF-IDF + logistic regression on the text;
- multi_class and movement: test accuracy and macro-F1 (movement: MCC) with the confusion matrix, against
  TF-IDF + logistic regression on the text and logistic regression / LightGBM on the tabular columns.

Hyperparameters are picked on the validation split when it has rows of both outcomes (or every class), else
fixed beforehand (C = 1, 200 trees): test rows are only ever predicted.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score

from cluster.metrics import classification_metrics, movement_metrics
from evaluation import evaluators as ev
from evaluation.baselines import (
    BaselineResult,
    _fit_lgbm_early,
    _frame,
    _lgbm,
    _series,
    _word,
    feature_columns,
    linear_tabular,
    tree_tabular,
)
from evaluation.data import split

C_GRID = (0.1, 1.0, 10.0)
FIXED_C = 1.0
FIXED_TREES = 200


def evaluate_declared(dataset: str, kind: str, num_classes: int, rows: pd.DataFrame, predictions) -> dict:
    """The figures of one model on a declared data set's test split (rows: `load_rows`' accepted rows)."""
    test = rows[rows["split"] == "test"]
    y = test["label"].to_numpy()
    probs = ev.align(predictions, test["id"])
    out: dict = {"dataset": dataset, "kind": kind, "split": "test (the declaration's split rule)", "n_test": len(test)}
    if kind == "binary_risk":
        out["test"] = ev.credit_figures(y, ev.positive_prob(probs))
        return out
    probs = ev.as_class_probs(probs)
    metrics = movement_metrics if kind == "movement" else classification_metrics
    out["test"] = (metrics(y, probs) if len(y) else {"n": 0}) | {"confusion": ev.confusion(y, probs, num_classes)}
    return out


def declared_headline(figures: dict) -> dict[str, float]:
    """The few numbers a summary shows: AUC/KS/Brier/ECE (binary) or accuracy/macro-F1/MCC."""
    test = figures.get("test", {})
    keys = ("auc", "ks", "brier", "ece") if figures.get("kind") == "binary_risk" else ("accuracy", "macro_f1", "mcc")
    return {k: round(test[k], 4) for k in keys if isinstance(test.get(k), float)}


def primary_metric(figures_or_headline: dict) -> str:
    """AUC for a binary task, MCC for movement, accuracy otherwise."""
    kind = figures_or_headline.get("kind")
    if kind is not None:
        return {"binary_risk": "auc", "movement": "mcc"}.get(kind, "accuracy")
    return next((k for k in ("auc", "mcc", "accuracy") if k in figures_or_headline), "accuracy")


def _usable_validation(val: pd.DataFrame, n_classes: int) -> bool:
    return len(val) > 0 and val["label"].nunique() == n_classes


def _choose(fit, score, grid, val_ok: bool, fixed):
    """fit(value) -> model; score(model) -> validation figure. The best value of `grid`, or `fixed`."""
    if not val_ok:
        return fixed, {}
    scores = {v: score(fit(v)) for v in grid}
    return max(scores, key=scores.get), {str(k): round(v, 4) for k, v in scores.items()}


def _probs(model, x, n_classes: int, kind: str, ids: pd.Series):
    p = model.predict_proba(x)
    full = np.zeros((p.shape[0], n_classes))
    full[:, np.asarray(model.classes_, dtype=int)] = p  # a class absent from train stays 0
    return _series(ids, full[:, 1]) if kind == "binary_risk" else _frame(ids, full)


def declared_baselines(dataset: str, kind: str, num_classes: int, rows: pd.DataFrame) -> list[BaselineResult]:
    """Every baseline that fits the data set's columns."""
    from threadpoolctl import threadpool_limits

    from evaluation.baselines import N_JOBS

    train, val, test = split(rows, "train"), split(rows, "validation"), split(rows, "test")
    val_ok = _usable_validation(val, num_classes)

    def val_score(model, x_val) -> float:
        if kind == "binary_risk":
            return roc_auc_score(val["label"], model.predict_proba(x_val)[:, 1])
        return accuracy_score(val["label"], model.predict(x_val))

    def result(name, pred, selected, start, notes=""):
        return BaselineResult(dataset, name, evaluate_declared(dataset, kind, num_classes, rows, pred), pred,
                              selected, time.perf_counter() - start, notes)

    out = []
    with threadpool_limits(limits=N_JOBS):
        num, cat = feature_columns(rows)
        if num or cat:
            start = time.perf_counter()
            prep = linear_tabular(train).fit(train)
            x_train, x_test = prep.transform(train), prep.transform(test)
            x_val = prep.transform(val) if len(val) else None
            fit = lambda c: LogisticRegression(C=c, max_iter=3000).fit(x_train, train["label"])  # noqa: E731
            c, scores = _choose(fit, lambda m: val_score(m, x_val), C_GRID, val_ok, FIXED_C)
            out.append(result("logistic regression (tabular, one-hot + standardise)",
                              _probs(fit(c), x_test, num_classes, kind, test["id"]),
                              {"C": c, "validation": scores or "no usable validation split: C fixed"}, start))
            start = time.perf_counter()
            f_train, f_val, f_test = tree_tabular(train, val, test)
            objective = "binary" if kind == "binary_risk" else "multiclass"
            model = _lgbm(objective, **({} if val_ok else {"n_estimators": FIXED_TREES}))
            if val_ok:
                trees = _fit_lgbm_early(model, f_train, train["label"], f_val, val["label"])
            else:
                model.fit(f_train, train["label"])
                trees = FIXED_TREES
            out.append(result("LightGBM (tabular)", _probs(model, f_test, num_classes, kind, test["id"]),
                              {"trees": trees}, start))
        if "text" in rows.columns and rows["text"].fillna("").str.strip().ne("").any():
            start = time.perf_counter()
            vec = _word().fit(train["text"].fillna(""))
            x_train, x_test = vec.transform(train["text"].fillna("")), vec.transform(test["text"].fillna(""))
            x_val = vec.transform(val["text"].fillna("")) if len(val) else None
            fit = lambda c: LogisticRegression(C=c, max_iter=3000).fit(x_train, train["label"])  # noqa: E731
            c, scores = _choose(fit, lambda m: val_score(m, x_val), C_GRID, val_ok, FIXED_C)
            out.append(result("TF-IDF (word 1-2-grams) + logistic regression",
                              _probs(fit(c), x_test, num_classes, kind, test["id"]),
                              {"C": c, "validation": scores or "no usable validation split: C fixed"}, start))
    return out
