"""The four finance tasks: which prepared data sets feed each, which head it trains, how it is scored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cluster.metrics import binary_metrics, classification_metrics, movement_metrics


@dataclass(frozen=True)
class TaskSpec:
    name: str
    head: str
    """Registered head name (model.heads)."""
    datasets: tuple[str, ...]
    """Prepared data sets whose train split trains the task; each is also scored on its own."""
    head_kwargs: dict = field(default_factory=dict)
    score: Callable[[np.ndarray, np.ndarray], dict] = classification_metrics
    """(labels, probabilities) -> EVAL.md metrics."""
    selection_metric: str = "accuracy"
    """Validation metric that picks the best checkpoint (higher is better)."""


def _binary(labels: np.ndarray, probs: np.ndarray) -> dict:
    probs = np.asarray(probs)
    return binary_metrics(labels, probs if probs.ndim == 1 else probs[:, -1])


TASKS: dict[str, TaskSpec] = {
    "credit_risk": TaskSpec("credit_risk", "credit_risk", ("lending_club",), score=_binary, selection_metric="auc"),
    "stock_movement": TaskSpec("stock_movement", "stock_movement", ("stocknet",), score=movement_metrics),
    "sentiment": TaskSpec("sentiment", "sentiment", ("financial_phrasebank", "fincuge_finfe")),
    "customer_service": TaskSpec(
        "customer_service", "intent", ("banking77",), head_kwargs={"num_classes": 77}
    ),
}


def task_spec(name: str) -> TaskSpec:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")
    return TASKS[name]
