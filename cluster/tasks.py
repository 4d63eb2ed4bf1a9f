"""Finetune tasks as training sees them: the registry's declarations (actors/tasks.py) with the head to build
and the metrics that score it. Nothing about a task is written here; class counts come from the data."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from actors.tasks import BUILTIN_TASKS, task_registry
from cluster.metrics import binary_metrics, classification_metrics, movement_metrics


def _binary(labels: np.ndarray, probs: np.ndarray) -> dict:
    probs = np.asarray(probs)
    return binary_metrics(labels, probs if probs.ndim == 1 else probs[:, -1])


SCORES: dict[str, Callable[[np.ndarray, np.ndarray], dict]] = {
    "binary_risk": _binary, "multi_class": classification_metrics, "movement": movement_metrics}
"""Head kind -> (labels, probabilities) -> EVAL.md metrics."""
HEAD_CLASSES = {"binary_risk": "credit_risk", "multi_class": "classification", "movement": "stock_movement"}
"""Head kind -> the registered head (model/heads.py) a declared task's head is built from."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    head: str
    """The head's name in the model (config.heads key)."""
    datasets: tuple[str, ...]
    """Data sets whose train split trains the task; each is also scored on its own."""
    kind: str = "multi_class"
    """binary_risk, multi_class or movement (actors.declaration.TaskDeclaration.kind)."""
    head_kwargs: dict = field(default_factory=dict)
    """Fixed keyword arguments of the head; the class count is added from the data (`head_config`)."""
    selection_metric: str = "accuracy"
    """Validation metric that picks the best checkpoint (higher is better)."""
    endpoint: str = ""
    """Path segment under /v1/ that serves the task."""

    @property
    def score(self) -> Callable[[np.ndarray, np.ndarray], dict]:
        """(labels, probabilities) -> metrics of the task's kind."""
        return SCORES[self.kind]

    def head_class(self) -> str:
        """The registered head the task's head is built from: its own name when registered (the built-ins),
        else its kind's generic head."""
        from model.heads import HEADS

        return self.head if self.head in HEADS else HEAD_CLASSES[self.kind]

    def head_config(self, output_dir: str | Path) -> dict:
        """`config.heads[self.head]`: the registered class (when it is not the head's own name) and, for a
        head that takes one, `num_classes` from the prepared manifests' `classes`."""
        from model.heads import HEADS

        kwargs = dict(self.head_kwargs)
        cls = self.head_class()
        if cls != self.head:
            kwargs["kind"] = cls
        if "num_classes" in inspect.signature(HEADS[cls].__init__).parameters:
            kwargs["num_classes"] = len(task_classes(self, output_dir))
        return kwargs


def dataset_classes(output_dir: str | Path, dataset: str) -> list[str] | None:
    """One prepared data set's class names in label-id order (its manifest's `classes`), or None."""
    import json

    from actors.manifest import MANIFEST

    path = Path(output_dir) / dataset / MANIFEST
    classes = json.loads(path.read_text()).get("classes") if path.exists() else None
    return list(classes) if classes is not None else None


def task_classes(task: TaskSpec, output_dir: str | Path) -> list[str]:
    """The class names of a task, in label-id order, from its prepared data sets' manifests (they must agree:
    one head over K classes; a binary task's data sets may name their two classes differently, see
    `dataset_classes`)."""
    import json

    from actors.manifest import MANIFEST

    found: dict[str, list[str]] = {}
    for dataset in task.datasets:
        path = Path(output_dir) / dataset / MANIFEST
        if path.exists():
            classes = json.loads(path.read_text()).get("classes")
            if classes is not None:
                found[dataset] = list(classes)
    if not found:
        raise ValueError(f"task {task.name}: none of its prepared data sets ({', '.join(task.datasets)}) records its "
                         f"classes in {MANIFEST}; re-run `finmm prepare --datasets {','.join(task.datasets)}`")
    first = next(iter(found.values()))
    differ = {d: c for d, c in found.items() if c != first}
    if differ:
        raise ValueError(f"task {task.name}: its data sets have different classes ({found}); one head needs one "
                         f"label coding: map them onto the same class names under label.classes, or declare a "
                         f"task per data set under data.tasks")
    return first


def _spec(name: str, decl) -> TaskSpec:
    return TaskSpec(name, decl.head or name, tuple(decl.datasets), decl.kind, selection_metric=decl.metric(),
                    endpoint=decl.endpoint_path(name))


def task_specs(data=None) -> dict[str, TaskSpec]:
    """Every task of the registry for `data` (actors.settings.DataSection; None: the built-ins alone)."""
    registry = BUILTIN_TASKS if data is None else task_registry(data)
    return {name: _spec(name, decl) for name, decl in registry.items()}


TASKS: dict[str, TaskSpec] = task_specs()
"""The built-in tasks (no config): for code that has no settings, e.g. the tests' parametrisation."""


def task_spec(name: str, data=None) -> TaskSpec:
    specs = task_specs(data)
    if name not in specs:
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(specs)} (declare your own under data.tasks)")
    return specs[name]
