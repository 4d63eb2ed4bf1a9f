"""Learning curves of finished runs: each run's validation metric at every epoch end and its training loss,
read from the run folder's metrics.jsonl, drawn as one PNG with a Markdown table beside it.

    python -m evaluation.learning_curves --metric val/lending_club/auc --out docs/curves/lending_club \
        "finmm (tabular + text)=artifacts/runs/finetune-credit_risk-..." "tabular only=artifacts/runs/..."
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evaluation.plots import learning_curve_plot


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: is {run_dir} a finmm run folder (artifacts/runs/<name>)?")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def curve(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of every logged row that has `key`."""
    points = [(int(r["step"]), float(r[key])) for r in rows if key in r and "step" in r]
    return [s for s, _ in points], [v for _, v in points]


def write(runs: dict[str, Path], metric: str, out: Path, title: str) -> Path:
    """PNG `out`.png and table `out`.md of `metric` against steps for each labelled run."""
    data = {label: read_metrics(folder) for label, folder in runs.items()}
    val = [(label, *curve(rows, metric)) for label, rows in data.items()]
    loss = [(label, *curve(rows, "loss")) for label, rows in data.items()]
    if not any(steps for _, steps, _ in val):
        raise ValueError(f"no run logged {metric!r}; the keys logged are e.g. "
                         f"{sorted({k for rows in data.values() for r in rows for k in r})[:12]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    learning_curve_plot(out.with_suffix(".png"), val, loss, title, metric.rsplit("/", 1)[-1])
    lines = [f"| run | {metric} by step |", "|---|---|"]
    for label, steps, values in val:
        lines.append(f"| {label} | " + ", ".join(f"{s}: {v:.4f}" for s, v in zip(steps, values, strict=True))
                     + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return out.with_suffix(".png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="label=run_folder (split at the last =)")
    parser.add_argument("--metric", required=True, help="a logged key, e.g. val/lending_club/auc")
    parser.add_argument("--out", required=True, type=Path, help="output path without suffix")
    parser.add_argument("--title", default="Learning curve")
    args = parser.parse_args()
    runs = dict(item.rsplit("=", 1) for item in args.runs)  # a label may hold "="
    print(write({k: Path(v) for k, v in runs.items()}, args.metric, args.out, args.title))


if __name__ == "__main__":
    main()
