"""Per-task reports (`artifacts/reports/<task>.json` + `<task>.md` + PNG plots) and the index.

A report sets finmm's figures beside the baselines' and the published ones, and records how they were made:
the config, the command line, the git commit, the data checksums and the wall times. Where finmm has no
figure yet, the report says so instead of showing a number; where a baseline beats finmm, it says that too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from actors.manifest import MANIFEST, sha256_file
from evaluation import evaluators as ev
from evaluation import plots

PRIMARY = {"german_credit": "auc_mean", "lending_club": "test AUC (richest inputs)",
           "financial_phrasebank": "accuracy", "fincuge_finfe": "accuracy", "banking77": "accuracy", "stocknet": "mcc"}
CLASS_NAMES = {"financial_phrasebank": ["negative", "neutral", "positive"],
               "fincuge_finfe": ["negative", "neutral", "positive"], "stocknet": ["fall", "rise"]}


def primary_key(dataset: str, headline: dict) -> str:
    """The metric a data set is ranked by: PRIMARY's for a built-in, by its kind for a declared one."""
    from evaluation.declared import primary_metric

    return PRIMARY.get(dataset) or primary_metric(headline)


def git_commit(cwd: str | Path = ".") -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def git_dirty(cwd: str | Path = ".") -> bool | None:
    """True when the working tree has uncommitted changes (the commit alone does not pin the code)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return bool(out.stdout.strip())


def data_checksums(dataset: str, output_dir: str | Path, data_root: str | Path | None) -> dict:
    """The prepared manifest's source-file checksums when the data set is prepared, else the raw files'."""
    manifest = Path(output_dir) / dataset / MANIFEST
    if manifest.exists():
        data = json.loads(manifest.read_text())
        return {"from": str(manifest), "manifest_sha256": sha256_file(manifest),
                "source_files": data.get("source_files", []), "splits": data.get("splits", {})}
    from actors.data_root import resolve_data_root
    from actors.sources import SOURCES

    if dataset not in SOURCES:  # a declared data set that is not prepared: its files are its globs' matches
        return {"from": "not prepared (declared data set)"}
    root = resolve_data_root(data_root)
    files = SOURCES[dataset].required_files(root)
    if len(files) > 8:  # StockNet: 265 files; one digest over their digests
        import hashlib

        digest = hashlib.sha256()
        for rel in files:
            digest.update(sha256_file(root / dataset / rel).encode())
        return {"from": "raw files (not prepared)", "files": len(files), "sha256_of_sha256s": digest.hexdigest()}
    return {"from": "raw files (not prepared)",
            "source_files": [{"path": str(root / dataset / f), "sha256": sha256_file(root / dataset / f)}
                             for f in files]}


def _primary(dataset: str, headline: dict) -> float | None:
    if dataset == "lending_club":  # tabular + text where the model reads text, else tabular alone
        return headline.get("tabular_text_auc", headline.get("tabular_auc"))
    return headline.get(primary_key(dataset, headline))


def findings(dataset: str, baselines: list[dict], finmm: dict) -> list[str]:
    """Plain sentences: which model is best on the primary metric, and where finmm loses."""
    key = primary_key(dataset, next((b["headline"] for b in baselines), finmm.get("headline", {})))
    scored = [(b["model"], _primary(dataset, b["headline"])) for b in baselines]
    scored = [(m, v) for m, v in scored if v is not None]
    lines = []
    if scored:
        best_model, best = max(scored, key=lambda s: s[1])
        lines.append(f"best baseline on {key}: {best_model} ({best:.4f})")
    value = _primary(dataset, finmm.get("headline", {})) if finmm.get("status") == "measured" else None
    if value is None:
        lines.append(f"finmm: {finmm.get('status', 'not measured yet')}")
    elif scored:
        worse = [(m, v) for m, v in scored if v > value]
        if worse:
            lines.append(f"finmm LOSES on {key} ({value:.4f}) to: " + ", ".join(f"{m} ({v:.4f})" for m, v in worse))
        else:
            lines.append(f"finmm ({value:.4f}) is at least as good as every baseline on {key}")
    if dataset == "stocknet":
        lines.append(f"StockNet test MCC has a standard error of about {ev.STOCKNET_MCC_STDERR}: "
                     "smaller gaps are noise")
    return lines


def _plots(dataset: str, entry: dict, folder: Path, stem: str) -> list[plots.PlotFile]:
    made: list[plots.PlotFile] = []
    models = [(b["model"], b["figures"]) for b in entry["baselines"]]
    if entry["finmm"].get("status") == "measured":
        models.append(("finmm", entry["finmm"]["figures"]))
    if dataset in ("german_credit", "lending_club"):
        roc, rel, counts = [], [], []
        for name, fig in models:
            f = fig["pooled"] if dataset == "german_credit" else fig.get("tabular_text", fig.get("tabular", {}))
            if "roc" in f:
                roc.append((f"{name} (AUC {f['auc']:.3f})", f["roc"]["fpr"], f["roc"]["tpr"]))
                rel.append((name, [b["mean_predicted"] for b in f["reliability"]],
                            [b["observed_rate"] for b in f["reliability"]]))
                counts.append([(b["lo"], b["hi"], b["count"]) for b in f["reliability"]])
        where = "pooled out-of-fold" if dataset == "german_credit" else "test"
        made.append(plots.line_plot(folder / f"{stem}_{dataset}_roc.png", roc, f"{dataset}: ROC ({where})",
                                    "false positive rate", "true positive rate", diagonal_label="chance"))
        made.append(plots.line_plot(folder / f"{stem}_{dataset}_calibration.png", rel,
                                    f"{dataset}: reliability (10 bins, {where})", "mean predicted P(bad)",
                                    "observed bad rate", markers=True, diagonal_label="perfectly calibrated",
                                    counts=counts))
    declared_kind = next((fig.get("kind") for _, fig in models if fig.get("kind")), None)
    if declared_kind == "binary_risk":  # a declared credit data set: the same two plots over its test split
        curves = [(n, f["test"]) for n, f in models if "roc" in f.get("test", {})]
        roc = [(f"{n} (AUC {f['auc']:.3f})", f["roc"]["fpr"], f["roc"]["tpr"]) for n, f in curves]
        made.append(plots.line_plot(folder / f"{stem}_{dataset}_roc.png", roc,
                                    f"{dataset}: ROC (test)", "false positive rate", "true positive rate",
                                    diagonal_label="chance"))
        made.append(plots.line_plot(folder / f"{stem}_{dataset}_calibration.png",
                                    [(n, [b["mean_predicted"] for b in f["reliability"]],
                                      [b["observed_rate"] for b in f["reliability"]]) for n, f in curves],
                                    f"{dataset}: reliability (10 bins, test)", "mean predicted P(positive)",
                                    "observed positive rate", markers=True, diagonal_label="perfectly calibrated",
                                    counts=[[(b["lo"], b["hi"], b["count"]) for b in f["reliability"]]
                                            for _, f in curves]))
    class_names = CLASS_NAMES.get(dataset) or entry.get("classes")
    if class_names and declared_kind != "binary_risk":
        name, fig = models[-1]
        if "confusion" in fig.get("test", {}):
            made.append(plots.confusion_plot(folder / f"{stem}_{dataset}_confusion.png", fig["test"]["confusion"],
                                             class_names, f"{dataset}: confusion on test, {name}"))
    key = primary_key(dataset, models[0][1] if models else {})
    bars = [(name, _primary(dataset, ev.headline(dataset, fig))) for name, fig in models]
    bars = [(n, v) for n, v in bars if v is not None]
    if bars:
        made.append(plots.bar_plot(folder / f"{stem}_{dataset}_models.png", [b[0] for b in bars],
                                   [b[1] for b in bars], f"{dataset}: {key} by model", key))
    ablations = entry["finmm"].get("ablations")
    if ablations:
        full = entry["finmm"]["headline"].get("mcc", 0.0)
        labels = ["all inputs", *(k.replace("_", " ") for k in ablations)]
        values = [full, *[a.get("mcc", 0.0) for a in ablations.values()]]
        made.append(plots.bar_plot(folder / f"{stem}_{dataset}_ablation.png", labels, values,
                                   f"{dataset}: finmm MCC per dropped modality", "MCC", baseline=0.0,
                                   baseline_label="chance (MCC 0)"))
    return made


def write_task_report(task: str, datasets: dict[str, dict], folder: str | Path, meta: dict) -> tuple[Path, Path]:
    """datasets: {name: {"baselines": [BaselineResult.to_dict()], "finmm": {...}}}. Writes <task>.json/.md and
    PNGs into `folder`; returns the two paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, entry in datasets.items():
        entry["published"] = ev.PUBLISHED.get(name, {})
        entry["findings"] = findings(name, entry["baselines"], entry["finmm"])
        made = _plots(name, entry, folder, task)
        entry["plots"] = [p.name for p in made]
        entry["plot_files"] = [p.to_dict() for p in made]  # pixel size and panels of each PNG
    report = {"task": task, "generated": time.strftime("%Y-%m-%d %H:%M:%S"), **meta, "datasets": datasets}
    json_path = folder / f"{task}.json"
    json_path.write_text(json.dumps(report, indent=2, default=_jsonable))
    md_path = folder / f"{task}.md"
    md_path.write_text(render_markdown(report))
    return json_path, md_path


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def render_markdown(report: dict) -> str:
    lines = [f"# Evaluation report: {report['task']}", ""]
    if report.get("quick"):
        lines += ["**Quick run: small slices of every split. These figures are NOT comparable to EVAL.md's.**", ""]
    dirty = " (with uncommitted changes)" if report.get("git_dirty") else ""
    lines += [f"- generated: {report['generated']}", f"- command: `{report.get('command', '')}`",
              f"- git commit: `{report.get('git_commit')}`{dirty}", f"- finmm bundle: `{report.get('model_dir')}`",
              f"- wall time: {report.get('wall_s', {}).get('total', '?')} s", ""]
    for name, entry in report["datasets"].items():
        lines += [f"## {name}", ""]
        keys = list(dict.fromkeys(k for b in entry["baselines"] for k in b["headline"]))
        lines += ["| model | " + " | ".join(keys) + " | wall s |", "|---" * (len(keys) + 2) + "|"]
        for b in entry["baselines"]:
            lines.append(f"| {b['model']} | " + " | ".join(_fmt(b["headline"].get(k, "")) for k in keys)
                         + f" | {b['wall_s']} |")
        fin = entry["finmm"]
        if fin.get("status") == "measured":
            lines.append("| **finmm** | " + " | ".join(_fmt(fin["headline"].get(k, "")) for k in keys)
                         + f" | {fin.get('wall_s', '')} |")
        else:
            lines.append(f"| **finmm** | {fin.get('status', 'not measured yet')} |" + " |" * len(keys))
        published = {k: v for k, v in entry["published"].items() if k != "source"}
        if published:
            lines.append(f"| published ({entry['published'].get('source', '')}) | "
                         + " | ".join(_fmt(published.get(k, "")) for k in keys) + " | |")
        lines += ["", *[f"- {f}" for f in entry["findings"]], ""]
        if fin.get("ablations"):
            lines += ["finmm ablations (modality dropped at inference):", ""]
            lines += [f"- {k}: accuracy {_fmt(v.get('accuracy'))}, MCC {_fmt(v.get('mcc'))}"
                      for k, v in fin["ablations"].items()] + [""]
        if fin.get("reason_codes"):
            lines += ["finmm reason codes (integrated gradients, first test rows):", ""]
            for r in fin["reason_codes"]:
                codes = ", ".join(f"{c['feature']} ({c['attribution']:+.3f})" for c in r["reason_codes"]) or "none"
                lines.append(f"- {r['id']}: P(default) {r['p_default']:.3f}; {codes}")
            lines.append("")
        files = entry.get("plot_files") or [{"file": p} for p in entry["plots"]]
        lines += [f"![{_plot_caption(p)}]({p['file']})" for p in files] + [""]
    return "\n".join(lines)


def _plot_caption(plot: dict) -> str:
    if "panels" not in plot:
        return plot["file"]
    panels = f"{plot['panels']} panel{'s' if plot['panels'] != 1 else ''}"
    return f"{plot['file']}: {plot['width_px']}x{plot['height_px']} px, {panels}"


def write_index(folder: str | Path) -> Path:
    """artifacts/reports/index.md: one summary table over every <task>.json present."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# finmm evaluation index", "",
             "| task | data set | metric | best baseline | finmm | published | quick | commit |",
             "|---|---|---|---|---|---|---|---|"]
    for path in sorted(folder.glob("*.json")):
        try:
            report = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        if "datasets" not in report:
            continue
        for name, entry in report["datasets"].items():
            key = primary_key(name, next((b["headline"] for b in entry["baselines"]), {}))
            scored = [(b["model"], _primary(name, b["headline"])) for b in entry["baselines"]]
            scored = [s for s in scored if s[1] is not None]
            best = max(scored, key=lambda s: s[1]) if scored else None
            fin = entry["finmm"]
            fin_text = (_fmt(_primary(name, fin["headline"])) if fin.get("status") == "measured"
                        else fin.get("status", "not measured yet").split(":")[0])
            pub = entry.get("published", {})
            pub_key = {"auc_mean": "auc_range"}.get(key, key)
            lines.append(f"| [{report['task']}]({report['task']}.md) | {name} | {key} | "
                         f"{f'{best[1]:.4f} ({best[0]})' if best else ''} | {fin_text} | {pub.get(pub_key, '')} | "
                         f"{'yes' if report.get('quick') else 'no'} | {(report.get('git_commit') or '')[:8]} |")
    path = folder / "index.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def command_line() -> str:
    return " ".join(["finmm" if Path(sys.argv[0]).name in ("finmm", "cli.py") else sys.argv[0], *sys.argv[1:]])
