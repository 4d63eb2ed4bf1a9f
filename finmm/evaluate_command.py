"""`finmm evaluate`, `finmm report` and `finmm tune`: the driver side of evaluation."""

from __future__ import annotations

import time
from pathlib import Path


def explain_settings(settings) -> dict:
    """How reason codes are computed, from their one home, the `serve:` section, so that the reports' reason codes
    are the ones the server answers with."""
    serve = settings.serve
    return {"method": serve.explain_method, "steps": serve.explain_steps, "reason_codes": serve.reason_codes}

def report_dir(settings) -> Path:
    """Reports live next to the prepared data: artifacts/data -> artifacts/reports."""
    return Path(settings.data.output_dir).parent / "reports"


PLAIN_DIR = Path("artifacts/reports/plain_finetune")
"""Recorded plain-MiniLM-finetune runs (`python -m evaluation.plain_finetune <dataset>`)."""
QUICK_ROWS = 300
"""Rows per split in a --quick run."""
GERMAN_CV_RECORD = "german_credit_cv.json"
"""The recorded finmm German Credit CV run (`finmm evaluate --task credit_risk --german-cv`), in the report
folder; later `finmm evaluate --task credit_risk` runs show it without re-training."""


def find_bundle(settings, task: str, model_dir: Path | None) -> Path | None:
    """The finetuned bundle to score: --model-dir, else a folder under finetune.output_dir whose heads include
    the task's (its own folder, the latest run, then any multi-task folder), else None."""
    import json

    from cluster.tasks import task_spec

    if model_dir:
        candidates = [Path(model_dir)]
    else:
        root = Path(settings.finetune.output_dir)
        candidates = [root / task, root / "latest", *sorted(p for p in root.glob("*") if task in p.name)]
    head = task_spec(task, settings.data).head
    for folder in candidates:
        config = folder / "config.json"
        if (folder / "model.safetensors").exists() and config.exists():
            if model_dir or head in json.loads(config.read_text()).get("heads", {}):
                return folder
    if model_dir:
        raise FileNotFoundError(f"--model-dir {model_dir} has no model.safetensors")
    return None


def _finmm_entries(settings, task, bundle, datasets, max_rows, console, ablations=True) -> tuple[dict, float]:
    """finmm's figures per data set, or a status saying why there are none."""
    from evaluation import evaluators as ev

    entries = {
        d: {
            "status": "not trained yet: no finetuned bundle (run `finmm finetune --task "
            f"{task}`, then `finmm evaluate --task {task}`)"
        }
        for d in datasets
    }
    if "german_credit" in entries:
        entries["german_credit"] = recorded_german_cv(settings) or {
            "status": "not measured yet: finmm on German Credit needs five finetunes, one per CV fold "
            "(`finmm evaluate --task credit_risk --german-cv`)"
        }
    if bundle is None:
        return entries, 0.0
    from evaluation.finmm_eval import evaluate_bundle

    start = time.perf_counter()
    try:
        scored = evaluate_bundle(bundle, task, settings.data.output_dir, settings.data.root, max_rows, ablations,
                                 datasets, data=settings.data, explain=explain_settings(settings))
    except FileNotFoundError as exc:
        for d in datasets:
            if d != "german_credit":
                entries[d] = {"status": f"not measured: {exc}"}
        return entries, time.perf_counter() - start
    for d in datasets:
        if d not in scored and d != "german_credit":
            entries[d] = {"status": f"not measured: {d} is not prepared under {settings.data.output_dir} "
                                    f"(`finmm prepare --datasets {d}`, then `finmm evaluate --task {task}`)"}
    for d, item in scored.items():
        item.pop("_predictions", None)
        entries[d] = {"status": "measured", **item, "headline": ev.headline(d, item["figures"])}
        console.print(f"  finmm on {d}: {entries[d]['headline']}")
    return entries, time.perf_counter() - start


def recorded_german_cv(settings) -> dict | None:
    """The recorded German Credit CV entry (figures, headline, wall times, hyperparameters), or None."""
    import json

    path = report_dir(settings) / GERMAN_CV_RECORD
    return json.loads(path.read_text()) if path.exists() else None


def run_german_cv(settings, console) -> dict:
    """Five finetunes of the credit_risk head, one per German Credit fold, each scored on its held-out fold
    (EVAL.md's protocol); records the entry in the report folder and returns it."""
    import json

    from evaluation import evaluators as ev
    from evaluation.finmm_eval import german_cv
    from evaluation.report import command_line, git_commit
    from finmm.ray_runtime import ensure_ray

    ensure_ray(settings.cluster)
    work_dir = Path(settings.data.output_dir).parent / "eval" / "german_cv"
    result = german_cv(settings, work_dir=work_dir, data_root=settings.data.root)
    result.pop("_predictions", None)
    trainer = settings.finetune
    entry = {
        "status": "measured",
        "figures": result["figures"],
        "headline": ev.headline("german_credit", result["figures"]),
        "wall_s": result["wall_s"],
        "hyperparameters": {"preset": settings.model.preset, "learning_rate": trainer.learning_rate,
                            "epochs": trainer.epochs, "batch_size": trainer.batch_size,
                            "num_workers": trainer.num_workers, "warmup_steps": trainer.warmup_steps,
                            "dropout": settings.model.dropout},
        "command": command_line(),
        "git_commit": git_commit(),
    }
    path = report_dir(settings) / GERMAN_CV_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry, indent=2))
    console.print(f"  finmm on german_credit (5-fold CV): {entry['headline']}; recorded in {path}")
    return entry


def run_evaluate(
    settings,
    task: str,
    console,
    *,
    model_dir: Path | None = None,
    quick: bool = False,
    max_test_rows: int | None = None,
    german_cv: bool = False,
    datasets: list[str] | None = None,
    ablations: bool = True,
) -> int:
    """Baselines (always) and finmm (when a finetuned bundle exists) on `task`'s data sets (or those of them
    in `datasets`); writes artifacts/reports/<task>.json, <task>.md and PNG plots. `ablations=False` skips
    finmm's extra passes (Lending Club tabular-only, StockNet modality drops)."""
    from cluster.tasks import dataset_classes, task_classes, task_specs
    from evaluation.baselines import run_baselines
    from evaluation.data import TASK_DATASETS, load_rows
    from evaluation.plain_finetune import recorded
    from evaluation.report import (
        command_line,
        data_checksums,
        git_commit,
        git_dirty,
        write_task_report,
    )

    specs = task_specs(settings.data)
    if task not in specs:
        console.print(f"unknown task {task!r}; choose from {', '.join(specs)} (declare your own under data.tasks)")
        return 2
    spec = specs[task]
    own = [d for d in spec.datasets if d in settings.data.declared]  # declared data sets: baselines by kind
    if german_cv and task != "credit_risk":
        console.print("--german-cv belongs to --task credit_risk (German Credit is a credit data set)")
        return 2
    started = time.perf_counter()
    if german_cv:
        t0 = time.perf_counter()
        run_german_cv(settings, console)
        wall = {"finmm_german_cv": round(time.perf_counter() - t0, 2)}
    else:
        wall = {}
    max_rows = QUICK_ROWS if quick else None
    datasets = [d for d in (*TASK_DATASETS.get(task, ()), *own) if datasets is None or d in datasets]
    bundle = find_bundle(settings, task, model_dir)
    results: dict = {}
    for dataset in datasets:
        t0 = time.perf_counter()
        rows = load_rows(dataset, settings.data.root, max_rows, data=settings.data)
        if dataset in own:
            from evaluation.declared import declared_baselines

            classes = dataset_classes(settings.data.output_dir, dataset) or task_classes(spec, settings.data.output_dir)
            results[dataset] = {"classes": classes}
            found = declared_baselines(dataset, spec.kind, len(classes), rows)
        else:
            found = run_baselines(dataset, rows)
        baselines = [b.to_dict() for b in found]
        plain = None if quick or dataset in own else recorded(dataset, PLAIN_DIR)
        if plain is not None:
            baselines.append({k: v for k, v in plain.items() if k != "summary"})
        for b in baselines:
            console.print(f"  {dataset} | {b['model']}: {b['headline']} ({b['wall_s']} s)")
        results[dataset] = {**results.get(dataset, {}), "baselines": baselines}
        wall[f"baselines_{dataset}"] = round(time.perf_counter() - t0, 2)
    finmm_rows = max_rows or max_test_rows
    finmm, finmm_s = _finmm_entries(settings, task, bundle, datasets, finmm_rows, console, ablations)
    for dataset in datasets:
        results[dataset]["finmm"] = finmm[dataset]
        results[dataset]["checksums"] = data_checksums(dataset, settings.data.output_dir, settings.data.root)
    wall["finmm"] = round(finmm_s, 2)
    wall["total"] = round(time.perf_counter() - started, 2)
    meta = {
        "command": command_line(),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "quick": quick,
        "finmm_max_rows_per_split": finmm_rows,
        "model_dir": str(bundle) if bundle else None,
        "config": settings.model_dump(mode="json"),
        "wall_s": wall,
    }
    json_path, md_path = write_task_report(task, results, report_dir(settings), meta)
    console.print(f"wrote {json_path} and {md_path}")
    for dataset, entry in results.items():
        for line in entry["findings"]:
            console.print(f"  {dataset}: {line}")
    return 0


def run_report(settings, console) -> int:
    """Gather every artifacts/reports/<task>.json into artifacts/reports/index.md."""
    from evaluation.report import write_index

    path = write_index(report_dir(settings))
    console.print(f"wrote {path}")
    return 0


def report_figures(folder: Path) -> list[tuple[str, dict, float | None, tuple[str, float] | None]]:
    """(data set, its report entry, finmm's primary figure or None, the best baseline (name, figure) or None)
    for every data set of every report in `folder`."""
    import json

    from evaluation.report import _primary

    out = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            report = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        for name, entry in report.get("datasets", {}).items():
            scored = [(b["model"], _primary(name, b["headline"])) for b in entry.get("baselines", [])]
            scored = [s for s in scored if s[1] is not None]
            best = max(scored, key=lambda s: s[1]) if scored else None
            fin = entry.get("finmm", {})
            value = _primary(name, fin["headline"]) if fin.get("status") == "measured" else None
            out.append((name, entry, value, best))
    return out


def summary_rows(folder: Path) -> list[tuple]:
    """(data set, metric, finmm, best baseline, published) per data set of every report in `folder`."""
    from evaluation.report import PRIMARY, primary_key

    rows = []
    for name, entry, value, best in report_figures(folder):
        rows.append(
            (
                name,
                primary_key(name, next((b["headline"] for b in entry.get("baselines", [])), {})),
                f"{value:.4f}" if value is not None else "not measured",
                f"{best[1]:.4f} ({best[0]})" if best else "",
                entry.get("published", {}).get(
                    {"auc_mean": "auc_range"}.get(PRIMARY.get(name, ""), PRIMARY.get(name, "")), ""
                ),
            )
        )
    return rows


def run_tune(settings, tasks: list[str], console, *, num_samples: int, max_concurrent: int) -> int:
    """Ray Tune (ASHA) over the finetune hyperparameters on the validation split; writes the best trial's
    settings as cluster/recipes/<tasks joined by +>.tuned.yaml."""
    from evaluation.tune import tune_task
    from finmm.ray_runtime import ensure_ray

    ensure_ray(settings.cluster)
    outcome = tune_task(settings, tasks, num_samples=num_samples, max_concurrent=max_concurrent)
    console.print(f"best validation {outcome.metric} = {outcome.best_score:.4f} with {outcome.best_overrides}")
    console.print(
        f"wrote recipe {outcome.recipe_path}; train with it: `finmm finetune --recipe {outcome.recipe_path}`"
    )
    return 0
