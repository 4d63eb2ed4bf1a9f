"""`finmm demo`: the main job end to end on an embedded local Ray cluster.

prepare -> pretrain -> finetune the four tasks -> evaluate against the baselines -> serve -> sample
requests -> summary table. Each finished stage leaves a marker with the hash of the settings it ran
with; a second run skips stages whose marker and outputs are complete (`--force` redoes them).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from finmm.config import FinMMSettings, load_settings

TASKS = ["credit_risk", "stock_movement", "sentiment", "customer_service"]

QUICK = [
    "data.max_rows_per_split=64",
    "model.preset=tiny",
    "model.init_from_minilm=false",
    "pretrain.max_steps=10",
    "pretrain.batch_size=8",
    "pretrain.checkpoint_every=10",
    "finetune.max_steps=30",
    "finetune.batch_size=8",
    "finetune.checkpoint_every=30",
    "finetune.learning_rate=5e-4",
]
"""The --quick profile: tiny model, 64 rows per split, a few steps (a few minutes on 2 cores)."""

DEFAULT = [
    "model.preset=small",
    "model.init_from_minilm=true",
    "pretrain.max_steps=30",
    "pretrain.batch_size=8",
    "pretrain.checkpoint_every=30",
    "finetune.max_steps=60",
    "finetune.batch_size=8",
    "finetune.checkpoint_every=60",
    "finetune.learning_rate=1e-4",
]
"""The default profile: the MiniLM-initialised `small` model, all the data, a brief pretrain and a short
multi-task finetune, sized to finish in about 30 minutes on 2 cores. Its figures are from a shortened run:
finmm is scored on at most DEFAULT_TEST_ROWS test rows per data set (the baselines on all of them)."""

DEFAULT_TEST_ROWS = 1000


def demo_settings(base: FinMMSettings, quick: bool, root: Path) -> FinMMSettings:
    """The user's settings with the profile's overrides, every artifact under `root`."""
    overrides = [
        *(QUICK if quick else DEFAULT),
        f"data.output_dir={root / 'data'}",
        f"cluster.storage_path={root / 'runs'}",
        f"pretrain.output_dir={root / 'pretrain'}",
        f"finetune.output_dir={root / 'finetune'}",
        f"finetune.tasks={TASKS}",
    ]
    merged = base.model_dump(mode="json")
    from finmm.config import _apply_override

    for override in overrides:
        _apply_override(merged, override, "demo profile")
    return FinMMSettings.model_validate(merged)


class Stages:
    """Completion markers: `<root>/stages/<name>.json` with the settings hash and the outputs made."""

    def __init__(self, root: Path, settings: FinMMSettings, force: bool):
        self.folder = root / "stages"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fingerprint = hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:16]
        self.force = force

    def done(self, name: str) -> dict | None:
        marker = self.folder / f"{name}.json"
        if self.force or not marker.exists():
            return None
        record = json.loads(marker.read_text())
        complete = record.get("fingerprint") == self.fingerprint and all(Path(p).exists() for p in record["outputs"])
        return record if complete else None

    def finish(self, name: str, outputs: list[Path], seconds: float, **extra) -> dict:
        record = {"fingerprint": self.fingerprint, "outputs": [str(p) for p in outputs], "seconds": seconds, **extra}
        (self.folder / f"{name}.json").write_text(json.dumps(record, indent=2))
        return record


def run_demo(settings: FinMMSettings, quick: bool, console: Console, *, force: bool = False,
             keep_serving: bool = False, root: Path | None = None) -> int:
    """Run every stage; return the exit code (0 when every endpoint answered)."""
    import ray

    from finmm.ray_runtime import ensure_ray

    root = Path(root or ("artifacts/demo-quick" if quick else "artifacts/demo")).resolve()
    settings = demo_settings(settings, quick, root)
    stages = Stages(root, settings, force)
    timings: list[tuple[str, str, float]] = []
    served = False
    started = time.perf_counter()
    owns_ray = not ray.is_initialized()
    try:
        ensure_ray(settings.cluster)
        _stage(stages, timings, console, "prepare", lambda: _prepare(settings, console))
        _stage(stages, timings, console, "pretrain", lambda: _pretrain(settings))
        _stage(stages, timings, console, "finetune", lambda: _finetune(settings))
        _stage(stages, timings, console, "evaluate", lambda: _evaluate(settings, console, quick))
        url = _serve(settings, root)
        served = True
        answers = _requests(settings, url)
        timings.append(("serve + requests", "ran", sum(a["ms"] for a in answers) / 1000))
        _summary(console, timings, answers, root, time.perf_counter() - started)
        if keep_serving:
            console.print(f"serving at {url} (web console at /, API docs at /docs); Ctrl-C stops it")
            while True:
                time.sleep(3600)
        return 0 if all(a["ok"] for a in answers) else 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping Serve and Ray[/]")
        return 130
    finally:
        if served:
            from ray import serve

            serve.shutdown()
        if owns_ray and ray.is_initialized():
            ray.shutdown()  # leaves no Ray processes behind; a cluster we joined is left as it was


def _stage(stages: Stages, timings: list, console: Console, name: str, run) -> None:
    if (record := stages.done(name)) is not None:
        console.print(f"[dim]{name}: complete from an earlier run, skipped (--force redoes it)[/]")
        timings.append((name, "skipped", record["seconds"]))
        return
    console.rule(f"[bold]{name}")
    t0 = time.perf_counter()
    outputs = run()
    seconds = time.perf_counter() - t0
    stages.finish(name, outputs, seconds)
    timings.append((name, "ran", seconds))


def _prepare(settings: FinMMSettings, console: Console) -> list[Path]:
    from finmm.prepare_command import run_prepare

    if run_prepare(settings, None, console) != 0:
        raise RuntimeError("prepare failed; see the message above")
    out = Path(settings.data.output_dir)
    return [out / name / "manifest.json" for name in settings.data.datasets]


def _pretrain(settings: FinMMSettings) -> list[Path]:
    from cluster.trainer import pretrain

    return [pretrain(settings).model_dir / "model.safetensors"]


def _finetune(settings: FinMMSettings) -> list[Path]:
    from cluster.trainer import finetune

    return [finetune(settings, TASKS).model_dir / "model.safetensors"]


def _evaluate(settings: FinMMSettings, console: Console, quick: bool) -> list[Path]:
    from finmm.evaluate_command import report_dir, run_evaluate, run_report

    model_dir = Path(settings.finetune.output_dir) / "latest"
    for task in TASKS:
        run_evaluate(settings, task, console, model_dir=model_dir, quick=quick,
                     max_test_rows=None if quick else DEFAULT_TEST_ROWS)
    run_report(settings, console)
    return [report_dir(settings) / "index.md"]


def _serve(settings: FinMMSettings, root: Path) -> str:
    from serve.ops import deploy, serve_config

    model_dir = (Path(settings.finetune.output_dir) / "latest").resolve()
    deploy(serve_config(settings.serve, model_dir))
    return f"http://{settings.serve.http.host}:{settings.serve.http.port}"


def _requests(settings: FinMMSettings, url: str) -> list[dict]:
    from actors.data_root import resolve_data_root
    from finmm.demo_requests import send_samples

    return send_samples(url, Path(settings.data.output_dir), resolve_data_root(settings.data.root))


def _summary(console: Console, timings, answers, root: Path, total_s: float) -> None:
    stages = Table("stage", "status", "seconds", title="finmm demo: stages")
    for name, status, seconds in timings:
        stages.add_row(name, status, f"{seconds:.0f}")
    console.print(stages)
    metrics = _metrics_table(root)
    if metrics is not None:
        console.print(metrics)
    endpoints = Table("endpoint", "answer", "ms", title="finmm demo: sample requests")
    for a in answers:
        endpoints.add_row(a["endpoint"], a["answer"] if a["ok"] else f"[red]{a['answer']}[/]", f"{a['ms']:.0f}")
    console.print(endpoints)
    console.print(f"total {total_s / 60:.1f} min; reports under {root / 'reports'}/ (index.md)")


def _metrics_table(root: Path) -> Table | None:
    from finmm.evaluate_command import summary_rows

    rows = summary_rows(root / "reports")
    if not rows:
        return None
    table = Table("data set", "metric", "finmm", "best baseline", "published", title="finmm demo: test figures")
    for row in rows:
        table.add_row(*[str(x) for x in row])
    return table


__all__ = ["run_demo", "demo_settings", "load_settings"]
