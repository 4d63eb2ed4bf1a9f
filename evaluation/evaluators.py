"""Per data set, the figures EVAL.md asks for, from predicted probabilities keyed by row id.

Predictions are a `pd.Series` of P(positive) (binary tasks) or a `pd.DataFrame` of class probabilities
(one column per class, in label order), indexed by the loaders' row `id`. Each evaluator takes the data set's
rows (from `evaluation.data.load_rows`), picks the rows EVAL.md scores, aligns the predictions to them
by id (a scored row without a prediction is an error, never silently dropped) and returns a JSON-ready dict.
The metric functions are `cluster.metrics`'; only the reliability curve is added here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

from cluster.metrics import (
    classification_metrics,
    expected_calibration_error,
    ks_statistic,
    movement_metrics,
)

Predictions = pd.Series | pd.DataFrame

PUBLISHED: dict[str, dict] = {
    "german_credit": {
        "source": "Lessmann et al. 2015 benchmark, LR / gradient boosting, cross-validated "
        "(EVAL.md: 'from memory, not checked against the paper')",
        "auc_range": [0.77, 0.80],
    },
    "lending_club": {},
    "financial_phrasebank": {
        "source": "FinBERT (Araci 2019), its own split",
        "accuracy": 0.86, "macro_f1": 0.84, "all_agree_accuracy": 0.97, "all_agree_macro_f1": 0.95,
    },
    "fincuge_finfe": {},
    "banking77": {"source": "fine-tuned BERT on the full data (EVAL.md)", "accuracy": 0.937},
    "stocknet": {"source": "StockNet, Xu & Cohen 2018, same dates and thresholds", "accuracy": 0.5823, "mcc": 0.081},
}  # fmt: skip
"""The published figures EVAL.md quotes, per data set."""

STOCKNET_TEST_SIZE = 3720
FINFE_UNSEEN_SIZE = 923
STOCKNET_MCC_STDERR = 0.016


class MissingPredictions(ValueError):
    """Some scored rows have no prediction."""


def align(predictions: Predictions, ids: pd.Series | list[str]) -> np.ndarray:
    """The predictions of `ids`, in that order: (N,) for a Series, (N, K) for a DataFrame."""
    ids = pd.Index(list(ids))
    missing = ids.difference(predictions.index)
    if len(missing):
        raise MissingPredictions(f"{len(missing)} scored rows have no prediction, e.g. {list(missing[:3])}")
    if not predictions.index.is_unique:
        raise ValueError("predictions have duplicate row ids")
    return predictions.reindex(ids).to_numpy(dtype=np.float64)


def as_class_probs(probs: np.ndarray) -> np.ndarray:
    """(N,) P(positive) -> (N, 2) [P(0), P(1)]; (N, K) is returned as is."""
    probs = np.asarray(probs, dtype=np.float64)
    return np.stack([1 - probs, probs], axis=1) if probs.ndim == 1 else probs


def positive_prob(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    return probs if probs.ndim == 1 else probs[:, -1]


# ----------------------------------------------------------------------------------------------- curves


def reliability_curve(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> list[dict]:
    """Equal-width bins over [0, 1] (the same bins as `expected_calibration_error`): per non-empty bin its
    edges, count, mean predicted probability and observed positive rate."""
    labels, scores = np.asarray(labels, float), np.asarray(scores, float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            out.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": int(sel.sum()),
                        "mean_predicted": float(scores[sel].mean()), "observed_rate": float(labels[sel].mean())})
    return out


def roc_points(labels: np.ndarray, scores: np.ndarray, max_points: int = 200) -> dict[str, list[float]]:
    """The ROC curve, thinned to at most `max_points` points (for plots and the JSON report)."""
    fpr, tpr, _ = roc_curve(labels, scores)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr))).round().astype(int))
    return {"fpr": [round(float(x), 5) for x in fpr[keep]], "tpr": [round(float(x), 5) for x in tpr[keep]]}


def confusion(labels: np.ndarray, probs: np.ndarray, num_classes: int) -> list[list[int]]:
    """Rows = true class, columns = predicted (arg-max) class."""
    pred = as_class_probs(probs).argmax(axis=1)
    matrix = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(matrix, (np.asarray(labels, int), pred), 1)
    return matrix.tolist()


# ------------------------------------------------------------------------------------------------ credit


def credit_figures(labels: np.ndarray, p: np.ndarray, curves: bool = True) -> dict:
    """ROC AUC, KS, Brier, ECE (10 bins) of P(bad) and, with `curves`, the ROC and reliability curves."""
    labels, p = np.asarray(labels), np.asarray(p, float)
    out: dict = {"n": int(len(labels)), "positive_rate": float(labels.mean()) if len(labels) else float("nan")}
    if len(np.unique(labels)) == 2:
        out |= {"auc": float(roc_auc_score(labels, p)), "ks": ks_statistic(labels, p),
                "brier": float(brier_score_loss(labels, p)), "ece": expected_calibration_error(labels, p)}
        if curves:
            out |= {"roc": roc_points(labels, p), "reliability": reliability_curve(labels, p)}
    return out


def evaluate_german_credit(rows: pd.DataFrame, predictions: pd.Series) -> dict:
    """EVAL.md: 5-fold CV. `predictions` holds every row's out-of-fold P(bad) (a row is predicted by the model
    trained on the other four folds). Mean and std (numpy, ddof=0) over the folds of AUC, KS and Brier; the
    pooled out-of-fold ROC, reliability curve and ECE."""
    folds = sorted(rows["split"].unique())
    per_fold = {}
    for fold in folds:
        part = rows[rows["split"] == fold]
        per_fold[fold] = credit_figures(part["label"].to_numpy(), align(predictions, part["id"]), curves=False)
    out: dict = {"dataset": "german_credit", "protocol": "5-fold StratifiedKFold(shuffle=True, random_state=0)",
                 "folds": per_fold}
    for metric in ("auc", "ks", "brier", "ece"):
        values = np.array([f[metric] for f in per_fold.values() if metric in f])
        if len(values):
            out[f"{metric}_mean"] = float(values.mean())
            out[f"{metric}_std"] = float(values.std())
    out["pooled"] = credit_figures(rows["label"].to_numpy(), align(predictions, rows["id"]))
    return out


def evaluate_lending_club(rows: pd.DataFrame, tabular: pd.Series | None, tabular_text: pd.Series | None) -> dict:
    """EVAL.md: test AUC and KS (plus Brier, ECE, curves), for tabular inputs alone and for tabular + text."""
    test = rows[rows["split"] == "test"]
    y = test["label"].to_numpy()
    out: dict = {"dataset": "lending_club", "split": "test (issue_d >= 2011-01-01)", "n_test": len(test)}
    for name, pred in (("tabular", tabular), ("tabular_text", tabular_text)):
        if pred is not None:
            out[name] = credit_figures(y, align(pred, test["id"]))
    return out


# -------------------------------------------------------------------------------------------------- text


def _classes(labels: np.ndarray, probs: np.ndarray) -> dict:
    if len(labels) == 0:
        return {"n": 0}
    return classification_metrics(labels, as_class_probs(probs))


def evaluate_phrasebank(rows: pd.DataFrame, predictions: pd.DataFrame) -> dict:
    """EVAL.md: accuracy and macro-F1 on test, and on the test sentences also in Sentences_AllAgree."""
    test = rows[rows["split"] == "test"]
    probs = align(predictions, test["id"])
    y = test["label"].to_numpy()
    agree = test["all_agree"].to_numpy(dtype=bool)
    return {"dataset": "financial_phrasebank", "split": "test (md5 bucket 0-1)",
            "test": _classes(y, probs) | {"confusion": confusion(y, probs, 3)},
            "all_agree": _classes(y[agree], probs[agree])}


def evaluate_finfe(rows: pd.DataFrame, predictions: pd.DataFrame) -> dict:
    """EVAL.md: accuracy and macro-F1 on eval_list (the test set), and on the eval texts not in train."""
    test = rows[rows["split"] == "test"]
    probs = align(predictions, test["id"])
    y = test["label"].to_numpy()
    unseen = ~test["seen_in_train"].to_numpy(dtype=bool)
    return {"dataset": "fincuge_finfe", "split": "test (eval_list.json)",
            "test": _classes(y, probs) | {"confusion": confusion(y, probs, 3)},
            "unseen": _classes(y[unseen], probs[unseen])}


def evaluate_banking77(rows: pd.DataFrame, predictions: pd.DataFrame) -> dict:
    """EVAL.md: accuracy and macro-F1 on the official test.csv."""
    test = rows[rows["split"] == "test"]
    probs = align(predictions, test["id"])
    y = test["label"].to_numpy()
    return {"dataset": "banking77", "split": "test (test.csv)", "test": _classes(y, probs)}


def evaluate_stocknet(rows: pd.DataFrame, predictions: pd.Series | pd.DataFrame) -> dict:
    """EVAL.md: accuracy and MCC on test (2015-10-01 <= t < 2016-01-01) and the number of test samples."""
    test = rows[rows["split"] == "test"]
    probs = as_class_probs(align(predictions, test["id"]))
    y = test["label"].to_numpy()
    out = movement_metrics(y, probs) if len(y) else {"n": 0}
    return {"dataset": "stocknet", "split": "test (2015-10-01 <= t < 2016-01-01)",
            "test": out | {"confusion": confusion(y, probs, 2), "mcc_stderr": STOCKNET_MCC_STDERR},
            "n_test": int(len(y)), "n_test_expected": STOCKNET_TEST_SIZE}


EVALUATORS: dict[str, Callable[..., dict]] = {
    "german_credit": evaluate_german_credit,
    "lending_club": evaluate_lending_club,
    "financial_phrasebank": evaluate_phrasebank,
    "fincuge_finfe": evaluate_finfe,
    "banking77": evaluate_banking77,
    "stocknet": evaluate_stocknet,
}


def headline(dataset: str, figures: dict) -> dict[str, float]:
    """The few numbers a summary table shows for one evaluated model."""
    pick: dict[str, float] = {}
    if dataset == "german_credit":
        keys = ("auc_mean", "auc_std", "ks_mean", "ks_std", "brier_mean", "ece_mean")
        pick = {k: figures[k] for k in keys if k in figures}
    elif dataset == "lending_club":
        for variant in ("tabular", "tabular_text"):
            for k in ("auc", "ks", "brier"):
                if k in figures.get(variant, {}):
                    pick[f"{variant}_{k}"] = figures[variant][k]
    elif dataset == "financial_phrasebank":
        pick = {"accuracy": figures["test"].get("accuracy"), "macro_f1": figures["test"].get("macro_f1"),
                "all_agree_accuracy": figures["all_agree"].get("accuracy"),
                "all_agree_macro_f1": figures["all_agree"].get("macro_f1")}
    elif dataset == "fincuge_finfe":
        pick = {"accuracy": figures["test"].get("accuracy"), "macro_f1": figures["test"].get("macro_f1"),
                "unseen_accuracy": figures["unseen"].get("accuracy"),
                "unseen_macro_f1": figures["unseen"].get("macro_f1")}
    elif dataset == "banking77":
        pick = {"accuracy": figures["test"].get("accuracy"), "macro_f1": figures["test"].get("macro_f1")}
    elif dataset == "stocknet":
        pick = {"accuracy": figures["test"].get("accuracy"), "mcc": figures["test"].get("mcc"),
                "n_test": figures["n_test"]}
    elif "kind" in figures:  # a declared data set (evaluation/declared.py)
        from evaluation.declared import declared_headline

        pick = declared_headline(figures)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in pick.items() if v is not None}
