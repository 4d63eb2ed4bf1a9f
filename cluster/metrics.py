"""The task metrics of ../shared/EVAL.md, computed from labels and predicted probabilities."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, matthews_corrcoef, roc_auc_score, roc_curve


def ks_statistic(labels: np.ndarray, scores: np.ndarray) -> float:
    """Kolmogorov-Smirnov: max |TPR - FPR| over thresholds."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.max(np.abs(tpr - fpr)))


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> float:
    """ECE over equal-width probability bins: sum_b |B|/n * |mean(label) - mean(score)|."""
    labels, scores = np.asarray(labels, float), np.asarray(scores, float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.mean() * abs(labels[sel].mean() - scores[sel].mean())
    return float(total)


def binary_metrics(labels: np.ndarray, prob_positive: np.ndarray) -> dict[str, float]:
    """Credit risk: ROC AUC, KS, Brier score and ECE of P(positive)."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return {"n": int(len(labels))}
    return {
        "auc": float(roc_auc_score(labels, prob_positive)),
        "ks": ks_statistic(labels, prob_positive),
        "brier": float(brier_score_loss(labels, prob_positive)),
        "ece": expected_calibration_error(labels, prob_positive),
        "n": int(len(labels)),
    }


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Sentiment and intents: accuracy and macro-F1 of the arg-max class."""
    predictions = np.asarray(probs).argmax(axis=1)
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro")),
        "n": int(len(labels)),
    }


def movement_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Stock movement: accuracy and Matthews correlation of rise/fall."""
    predictions = np.asarray(probs).argmax(axis=1)
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "mcc": float(matthews_corrcoef(labels, predictions)),
        "n": int(len(labels)),
    }
