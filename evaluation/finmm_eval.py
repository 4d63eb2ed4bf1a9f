"""Score a finetuned finmm bundle (a `save_pretrained` folder) on a task's prepared test split(s).

The test shards are read with pyarrow directly (no Ray Train), collated with the bundle's own
`preprocessing_state["layout"]`, run through `FinMMForTask` in eval mode without gradients, and the
probabilities are mapped back to row ids and handed to `evaluation.evaluators`, so finmm is scored
exactly like the baselines. Ablations drop a modality's key from every batch at inference time (the model was
trained with it; this measures what the trained model draws from each input, not what a model trained
without it would reach).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from actors.collate import BatchLayout, collate
from actors.columns import MODALITY_COLUMNS
from actors.manifest import MANIFEST
from actors.versions import check_bundle_data
from cluster.tasks import task_spec
from evaluation import evaluators as ev
from evaluation.data import load_rows
from model.precision import autocast, resolve_precision

BATCH_SIZE = 64
EXPLAIN_DEFAULTS = {"method": "integrated_gradients", "steps": 8, "reason_codes": 4}
"""serve.explain_method / explain_steps / reason_codes' defaults, for callers without a config (tests)."""
STOCK_MODALITIES = ("text", "image", "series")


def prepared_modalities(output_dir: str | Path, dataset: str) -> list[str]:
    path = Path(output_dir) / dataset / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{dataset} is not prepared ({path} missing): run `finmm prepare --datasets {dataset}`")
    return list(json.loads(path.read_text()).get("modalities", []))


def read_split(output_dir: str | Path, dataset: str, split: str, max_rows: int | None = None) -> pa.Table:
    """The prepared shards of one split: `id`, `label` and every model-input column, in file order."""
    folder = Path(output_dir) / dataset / split
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no prepared {split!r} shards of {dataset!r} in {folder}")
    modalities = prepared_modalities(output_dir, dataset)
    wanted = ["id", "label"] + [c for m in modalities for c in MODALITY_COLUMNS[m] if c in ("input_ids",
              "attention_mask", "pixel_values", "tab_numeric", "tab_numeric_missing", "tab_categorical",
              "series_values", "series_mask")]  # fmt: skip
    tables, n = [], 0
    for f in files:
        t = pq.read_table(f, columns=[c for c in wanted if c in pq.read_schema(f).names])
        tables.append(t)
        n += len(t)
        if max_rows is not None and n >= max_rows:
            break
    table = pa.concat_tables(tables)
    return table.slice(0, max_rows) if max_rows is not None else table


def batches(table: pa.Table, layout: BatchLayout, tabular_dataset: str | None, batch_size: int = BATCH_SIZE,
            drop: Sequence[str] = ()) -> Iterator[tuple[list[str], dict]]:
    """(row ids, model batch) per `batch_size` rows in table order; modalities in `drop` are removed."""
    for start in range(0, len(table), batch_size):
        part = table.slice(start, batch_size)
        rows = {c: part[c].to_pylist() for c in part.column_names if c not in ("id",)}
        batch = collate(rows, layout, tabular_dataset)
        batch.pop("labels", None)
        for m in drop:
            batch.pop(m, None)
        yield part["id"].to_pylist(), batch


@torch.no_grad()
def predict(model, head: str, table: pa.Table, layout: BatchLayout, tabular_dataset: str | None,
            drop: Sequence[str] = (), batch_size: int = BATCH_SIZE) -> pd.Series | pd.DataFrame:
    """Probabilities keyed by row id, in the table's row order: a Series (credit_risk: P(default)) or a
    DataFrame (class probabilities). Inference runs in bf16-mixed where the CPU has native bf16 (as serving
    does), else fp32. The rows are batched in order of text length, so each batch pads to a similar length
    (on Lending Club's test split 2.7x fewer token positions than in file order), then put back in order."""
    model.eval()
    order = np.arange(len(table))
    if "input_ids" in table.column_names:
        lengths = pc.fill_null(pc.list_value_length(table["input_ids"]), 0)
        order = pc.sort_indices(lengths).to_numpy()  # stable: ties keep file order
    probs = []
    precision = resolve_precision("auto", use_gpu=False)  # bf16 matmuls on an AMX CPU, as the server runs
    for _, batch in batches(table.take(order), layout, tabular_dataset, batch_size, drop):
        if not any(batch.get(m) is not None for m in ("text", "image", "tabular", "series")):
            raise ValueError(f"dropping {list(drop)} leaves no modality in the batch")
        with autocast(precision):
            probs.append(model(batch)[head]["probs"].float().numpy())
    values = np.concatenate(probs) if probs else np.zeros((0,))
    values[order] = values.copy()  # row order[i] got prediction i
    ids = table["id"].to_pylist()
    return pd.Series(values, index=ids) if values.ndim == 1 else pd.DataFrame(values, index=ids)


def bundle_layout(bundle) -> BatchLayout:
    state = bundle.preprocessing_state or {}
    if "layout" not in state:
        raise ValueError("the bundle has no preprocessing_state.json with a layout; was it written by finmm finetune?")
    return BatchLayout.from_dict(state["layout"])


def reason_code_examples(model, table: pa.Table, layout: BatchLayout, dataset: str, n: int = 5,
                         explain_settings: Mapping | None = None) -> list[dict]:
    """Reason codes (top tabular features raising P(default)) for the first `n` rows, computed as the server
    computes them: `explain_settings` = {"method", "steps", "reason_codes"} from the one home of those settings,
    `serve.explain_method`, `serve.explain_steps` and `serve.reason_codes` (the CLI passes them; without them,
    their defaults)."""
    from model.explain import explain, reason_codes

    chosen = {**EXPLAIN_DEFAULTS, **(explain_settings or {})}
    part = table.slice(0, n)
    ids, batch = next(batches(part, layout, dataset, batch_size=n))
    exp = explain(model, batch, "credit_risk", method=chosen["method"], steps=chosen["steps"])
    codes = reason_codes(exp, k=chosen["reason_codes"], dataset=dataset)
    return [{"id": i, "p_default": float(s), "reason_codes": c}
            for i, s, c in zip(ids, exp.probability.tolist(), codes, strict=True)]


def evaluate_bundle(model_dir: str | Path, task: str, output_dir: str | Path, data_root: str | Path | None = None,
                    max_rows: int | None = None, ablations: bool = True,
                    datasets: Sequence[str] | None = None, data=None, explain: Mapping | None = None) -> dict:
    """Every EVAL.md figure of the bundle on `task`'s data sets (German Credit excluded: see `german_cv`),
    plus the ablations and, for credit, reason codes; data sets not prepared under `output_dir` are left out.
    With `max_rows` (quick runs) only the test rows of `load_rows(..., max_rows)` are scored, the same rows as
    the baselines. `ablations=False` scores each test split once: no Lending Club tabular-only pass and no
    StockNet modality drops (each is another full pass over the split; the demo skips them). `datasets`
    keeps only those of the task's data sets. `data` (the data section) brings the declared data sets and
    tasks (issue 16); without it only the built-ins are known.
    `explain` ({"method", "steps", "reason_codes"}: serve.explain_method, explain_steps, reason_codes) makes the
    credit reason codes the server's.
    Returns {dataset: {...}}; predictions under "_predictions" (not JSON)."""
    from model.bundle import load_bundle

    torch.set_num_threads(2)
    bundle = load_bundle(model_dir)
    layout = bundle_layout(bundle)
    spec = task_spec(task, data)
    out: dict = {}
    for dataset in spec.datasets:
        if datasets is not None and dataset not in datasets:
            continue
        if not (Path(output_dir) / dataset / "manifest.json").exists():
            continue  # not prepared here (e.g. the demo's one data set per task): the caller says so
        check_bundle_data(output_dir, model_dir, bundle.preprocessing_state, dataset)  # same tokenizer, same state
        start = time.perf_counter()
        modalities = prepared_modalities(output_dir, dataset)
        tab = dataset if "tabular" in modalities else None
        trained_on = (bundle.preprocessing_state or {}).get("input_modalities") or modalities
        unused = tuple(m for m in modalities if m not in trained_on)  # a finetune.input_modalities ablation
        table = read_split(output_dir, dataset, "test")
        if max_rows is not None:  # quick: the same evenly spaced test rows the baselines are scored on
            sample = load_rows(dataset, data_root, max_rows, data=data)
            wanted = pa.array(sample.loc[sample["split"] == "test", "id"].tolist(), pa.string())
            table = table.filter(pc.is_in(table["id"], value_set=wanted))
        rows = load_rows(dataset, data_root, data=data)
        rows = rows[rows["id"].isin(set(table["id"].to_pylist())) | (rows["split"] != "test")]
        pred = predict(bundle.model, spec.head, table, layout, tab, drop=unused)
        item: dict = {"_predictions": pred}
        if unused:
            item["input_modalities"] = [m for m in modalities if m not in unused]
        if dataset == "lending_club":
            text_off = (predict(bundle.model, spec.head, table, layout, tab, drop=("text", *unused))
                        if ablations else None)
            item["figures"] = ev.evaluate_lending_club(rows, text_off, pred)
            if ablations:
                item["ablation_note"] = "tabular = the same model with the text modality dropped at inference"
            item["reason_codes"] = reason_code_examples(bundle.model, table, layout, dataset, explain_settings=explain)
        elif dataset in ev.EVALUATORS:
            item["figures"] = ev.EVALUATORS[dataset](rows, pred)
        else:  # a declared data set: figures by its task's kind
            from cluster.tasks import dataset_classes, task_classes
            from evaluation.declared import evaluate_declared

            classes = dataset_classes(output_dir, dataset) or task_classes(spec, output_dir)
            item["classes"] = classes
            item["figures"] = evaluate_declared(dataset, spec.kind, len(classes), rows, pred)
        if dataset == "stocknet" and ablations:
            item["ablations"] = {}
            for m in STOCK_MODALITIES:
                if m in modalities:
                    dropped = predict(bundle.model, spec.head, table, layout, tab, drop=(m,))
                    item["ablations"][f"without_{m}"] = ev.evaluate_stocknet(rows, dropped)["test"]
        item["wall_s"] = round(time.perf_counter() - start, 2)
        item["n_scored"] = len(table)
        out[dataset] = item
    return out


# ------------------------------------------------------------------------------------- German Credit CV


def german_fold_views(output_dir: str | Path, work_dir: str | Path) -> list[Path]:
    """Per CV fold k, a prepared-data folder whose german_credit has `train` = the other four folds' shards and
    `test` = fold k's (hard links, or copies across file systems), plus the manifest and the tokenizer."""
    import os
    import shutil

    src = Path(output_dir) / "german_credit"
    folds = sorted(p.name for p in src.iterdir() if p.is_dir() and p.name.startswith("fold"))
    views = []
    for k, fold in enumerate(folds):
        view = Path(work_dir) / f"fold{k}"
        shutil.rmtree(view, ignore_errors=True)
        target = view / "german_credit"
        for split, members in (("train", [f for f in folds if f != fold]), ("test", [fold])):
            (target / split).mkdir(parents=True)
            for member in members:
                for f in sorted((src / member).glob("*.parquet")):
                    dst = target / split / f"{member}-{f.name}"
                    try:
                        os.link(f, dst)
                    except OSError:
                        shutil.copyfile(f, dst)
        shutil.copyfile(src / MANIFEST, target / MANIFEST)
        shutil.copyfile(Path(output_dir) / "tokenizer.json", view / "tokenizer.json")
        views.append(view)
    return views


def german_cv(settings, work_dir: str | Path = "artifacts/eval/german_cv", data_root=None) -> dict:
    """finmm on German Credit by EVAL.md's 5-fold CV: five finetunes of the credit_risk head (train = four
    folds, no validation split, fixed settings.finetune hyperparameters), each scoring its held-out fold.
    Needs a running Ray cluster (finmm.ray_runtime.ensure_ray). Costs five finetunes."""
    from actors.declaration import TaskDeclaration
    from cluster.trainer import finetune
    from model.bundle import load_bundle

    # the credit_risk head trained on German Credit's folds: a task of its own, declared as a user's would be
    cv_task = TaskDeclaration(kind="binary_risk", datasets=["german_credit"], endpoint="german-credit-cv",
                              selection_metric="auc", head="credit_risk")
    parts, wall = [], {}
    for k, view in enumerate(german_fold_views(settings.data.output_dir, work_dir)):
        fold_settings = settings.model_copy(deep=True)
        fold_settings.data.output_dir = view
        fold_settings.data.tasks = {**fold_settings.data.tasks, "german_credit_cv": cv_task}
        fold_settings.finetune.output_dir = Path(work_dir) / f"model-fold{k}"
        outcome = finetune(fold_settings, ["german_credit_cv"], name=f"german-cv-fold{k}")
        wall[f"fold{k}"] = round(outcome.wall_s, 1)
        bundle = load_bundle(outcome.model_dir)
        table = read_split(view, "german_credit", "test")
        parts.append(predict(bundle.model, "credit_risk", table, bundle_layout(bundle), "german_credit"))
    pred = pd.concat(parts)
    rows = load_rows("german_credit", data_root)
    if pred.index.has_duplicates:
        raise ValueError("German Credit CV predicted a row twice: the prepared folds overlap; re-run "
                         "`finmm prepare --datasets german_credit`")
    # a prepared slice (data.max_rows_per_split) scores its own rows; the full data scores all 1,000
    rows = rows[rows["id"].isin(pred.index)]
    return {"figures": ev.evaluate_german_credit(rows, pred), "wall_s": wall, "_predictions": pred}
