"""A declaration's label coding and split rules, applied to rows.

Shared by the generic loader (`declared.py`) and the parsers of the built-ins whose raw format needs Python
(`builtin.yaml` names them), so that a rule of `actors.declaration` means the same whoever reads the files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date

import numpy as np

from actors.declaration import FileSplit, HashHoldout, HashSplit, KFoldSplit, LabelColumn, TimeSplit


def bucket(text: str, buckets: int = 10) -> int:
    """`int(md5(text as UTF-8), 16) % buckets`: the hash bucket of EVAL.md's splits."""
    return int(hashlib.md5(text.encode("utf-8")).hexdigest(), 16) % buckets


def label_index(label: LabelColumn) -> dict[str, int]:
    """Raw label value -> label id, for a coding with `classes` (ids: `LabelColumn.class_names()` order)."""
    names = label.class_names() or []
    index = {name: i for i, name in enumerate(names)}
    return {raw: index[name] for raw, name in label.classes.items()}


def hash_split(keys: Sequence[str], rule: HashSplit) -> list[str]:
    """Each key's split under a hash rule: its bucket is test, validation or (any other bucket) train."""
    out = []
    for key in keys:
        b = bucket(key, rule.buckets)
        out.append("test" if b in rule.test else "validation" if b in rule.validation else "train")
    return out


def held_out(keys: Sequence[str], rule: HashHoldout | None) -> np.ndarray:
    """Which keys the holdout sends to validation (all False without a holdout)."""
    if rule is None:
        return np.zeros(len(keys), dtype=bool)
    return np.array([bucket(k, rule.of) in rule.buckets for k in keys], dtype=bool)


def file_splits(rule: FileSplit, files: Sequence[str]) -> dict[str, str]:
    """The split of each file read; a file the rule does not map, or a mapped file not read, is an error
    (ValueError naming it)."""
    unmapped = [f for f in files if f not in rule.files]
    if unmapped:
        raise ValueError(f"file(s) {unmapped} have no split under split.files (mapped: {', '.join(rule.files)})")
    unread = [f for f in rule.files if f not in files]
    if unread:
        raise ValueError(f"split.files maps {unread}, which no entry of files matched (read: {', '.join(files)})")
    return {f: rule.files[f] for f in files}


def kfold(labels: np.ndarray, rule: KFoldSplit) -> list[str]:
    """`fold<k>`, the fold of scikit-learn's shuffled StratifiedKFold in which each row is a test row, over
    the rows in the order given; `fold-1` for every row when some class has fewer rows than folds."""
    from sklearn.model_selection import StratifiedKFold

    fold = np.full(len(labels), -1)
    if len(labels) >= rule.folds and np.unique(labels, return_counts=True)[1].min() >= rule.folds:
        skf = StratifiedKFold(n_splits=rule.folds, shuffle=True, random_state=rule.seed)
        for k, (_, test_idx) in enumerate(skf.split(np.zeros(len(labels)), labels)):
            fold[test_idx] = k
    return [f"fold{k}" for k in fold]


def time_ranges(rule: TimeSplit) -> tuple[tuple[str, date | None, date | None], ...]:
    """(split, first day, day after the last) of a time rule with a `validation_from`; None = unbounded."""
    if rule.validation_from is None:
        return (("train", rule.train_from, rule.test_from), ("test", rule.test_from, rule.test_until))
    return (("train", rule.train_from, rule.validation_from), ("validation", rule.validation_from, rule.test_from),
            ("test", rule.test_from, rule.test_until))


def generated_id(id_format: str, file: str, row: int) -> str:
    """A row's generated id (`DatasetDeclaration.id_format`)."""
    stem = file.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return id_format.format(file=file, stem=stem, row=row)
