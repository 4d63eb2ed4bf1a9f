"""`finmm demo`: the main job end to end on an embedded local Ray cluster.

prepare -> pretrain -> finetune the four tasks -> evaluate against the baselines -> serve -> sample
requests -> summary table. Each finished stage leaves a marker with the hash of the settings it ran
with; a second run skips stages whose marker and outputs are complete (`--force` redoes them).
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

from finmm.config import FinMMSettings, load_settings
from finmm.run_log import error_block

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
    "data.datasets=[financial_phrasebank,banking77,lending_club,stocknet]",
    "model.preset=small",
    "model.init_from_minilm=true",
    "finetune.batch_size=16",
    "finetune.learning_rate=1e-4",
    "finetune.new_module_learning_rate=1e-3",
    "finetune.warmup_steps=60",
    "finetune.checkpoint_every=100000",
    "finetune.task_epochs.customer_service=2",
    "finetune.task_epochs.sentiment=2",
    "finetune.task_epochs.credit_risk=0.1",
    "finetune.task_epochs.stock_movement=0.05",
]
"""The default profile: the MiniLM-initialised `small` model finetuned on one data set per task, sized to
finish in about 30 minutes on 2 cores. No pretraining: MiniLM's weights already start the text path, and on 2
cores the minutes buy more as finetuning. The four tasks train interleaved (`finetune.task_epochs`: one
task's micro-batch per step), so Banking77 and PhraseBank get 2 passes each, while Lending Club's long rows get
a tenth of one and StockNet's a twentieth (3 / 3 / 0.25 / 0.1 was on course for about 27 minutes of finetuning
alone; 2.5 / 2 / 0.1 / 0.05 took 19 minutes, and Banking77 had reached 0.930 validation accuracy after 2 passes).
finmm is scored once on the full test splits of the demo's data sets, with the baselines on the same splits;
the ablation passes (Lending Club tabular-only, StockNet modality drops) are left to `finmm evaluate`. FinFE,
FinNL and German Credit are left to `finmm prepare` and the recipes (docs/evaluation.md)."""

QUICK_PRETRAINS, DEFAULT_PRETRAINS = True, False
"""Whether each profile runs the pretrain stage: --quick runs every stage of the chain on a tiny model; the
default profile spends its time on finetuning instead."""

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
             keep_serving: bool = False, root: Path | None = None, noise: Console | None = None,
             err_console: Console | None = None, log_path: Path | None = None) -> int:
    """Run every stage; return the exit code (0 when every endpoint answered).

    `console` is the terminal's quiet view (one progress display per stage, then the summary); the stages'
    own chatter goes to `noise` (the run's log file under `finmm demo`, else `console`). A failing stage prints
    one what / where / how-to-fix block on `err_console` and the demo returns a non-zero code."""
    import ray

    from finmm.ray_runtime import ensure_ray

    noise = noise or console
    err_console = err_console or console
    root = Path(root or ("artifacts/demo-quick" if quick else "artifacts/demo")).resolve()
    settings = demo_settings(settings, quick, root)
    stages = Stages(root, settings, force)
    timings: list[tuple[str, str, float]] = []
    served = False
    started = time.perf_counter()
    owns_ray = not ray.is_initialized()
    profile = ("--quick: tiny model, 64 rows per split of every data set" if quick
               else "small model (MiniLM start), one data set per task, full splits")
    console.print(f"[bold]finmm demo[/] {profile}", highlight=False)
    console.print(f"[dim]Ray, its workers and DeepSpeed write to {log_path} (--verbose shows them here)[/]"
                  if log_path else "[dim]Ray's own output is shown as it comes (no log file)[/]", highlight=False)
    try:
        with _step("starting Ray", noise):
            ensure_ray(settings.cluster)
        _stage(stages, timings, console, "prepare", lambda: _prepare(settings, console, noise))
        if QUICK_PRETRAINS if quick else DEFAULT_PRETRAINS:
            _stage(stages, timings, console, "pretrain", lambda: _pretrain(settings, console))
        else:
            console.print("[dim]pretrain: skipped by this profile (the text path starts from MiniLM's weights; "
                          "`finmm pretrain` runs it)[/]", highlight=False)
        _stage(stages, timings, console, "finetune", lambda: _finetune(settings, console))
        _stage(stages, timings, console, "evaluate", lambda: _evaluate(settings, console, noise, quick))
        console.rule("[bold]serve", style="dim")
        t0 = time.perf_counter()
        with _step("serve", noise):
            url = _serve(settings, root)
        served = True
        answers = _requests(settings, url)
        ok = sum(a["ok"] for a in answers)
        console.print(f"  deployed at {url} and sent one request per endpoint: {ok}/{len(answers)} answered "
                      f"({time.perf_counter() - t0:.0f} s)", highlight=False)
        timings.append(("serve + requests", "ran", time.perf_counter() - t0))
        _summary(console, settings, timings, answers, root, time.perf_counter() - started, quick, url,
                 keep_serving, log_path)
        if keep_serving:
            console.print(f"serving at {url} (web console at /, API docs at /docs); Ctrl-C stops it")
            while True:
                time.sleep(3600)
        return 0 if all(a["ok"] for a in answers) else 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping Serve and Ray[/]")
        return 130
    except StageFailed as failure:
        _log_traceback(failure.error, noise)
        where, fix, code = _explain(failure, settings, log_path)
        err_console.print()
        error_block(err_console, f"the {failure.stage} stage failed: {type(failure.error).__name__}: "
                    f"{failure.error}", where, fix)
        return code
    finally:
        if served:
            from ray import serve

            serve.shutdown()
        if owns_ray and ray.is_initialized():
            ray.shutdown()  # leaves no Ray processes behind; a cluster we joined is left as it was


class StageFailed(Exception):
    """A stage raised: `stage` names it, `error` is what it raised."""

    def __init__(self, stage: str, error: BaseException):
        super().__init__(f"{stage}: {error}")
        self.stage = stage
        self.error = error


@contextmanager
def _step(name: str, noise: Console):
    """A stage step outside `_stage` (starting Ray, serving): its failure is a StageFailed too."""
    try:
        yield
    except (KeyboardInterrupt, StageFailed):
        raise
    except Exception as exc:
        raise StageFailed(name, exc) from exc


def _log_traceback(error: BaseException, noise: Console) -> None:
    import traceback

    noise.print("".join(traceback.format_exception(type(error), error, error.__traceback__)),
                markup=False, highlight=False)


def _explain(failure: StageFailed, settings: FinMMSettings, log_path: Path | None) -> tuple[str, str, int]:
    """(where, how to fix, exit code) for a failed stage, in the shape of the config errors."""
    from actors.manifest import ReconcileError
    from actors.sources.base import DataError, DataFileError, DataRootError

    error = failure.error
    trace = f"the full traceback is in {log_path}" if log_path else "the traceback is above"
    where = f"stage {failure.stage} of `finmm demo`; {trace}"
    if isinstance(error, DataFileError):
        return (f"file {error.path} of data set {error.dataset!r}; {trace}",
                f"put the file back (its source: {error.source_url}; docs/data.md lists every file), or point "
                "FINMM_DATA_DIR / data.root at a complete data root, then rerun `finmm demo`", 1)
    if isinstance(error, DataRootError):
        return (where, "set FINMM_DATA_DIR or data.root to the folder holding the data sets (docs/data.md)", 1)
    if isinstance(error, DataError):
        return (f"data root {settings.data.root or '$FINMM_DATA_DIR, ./data or ../shared/data'}; {where}",
                "fix or replace the raw file named above (docs/data.md), then rerun `finmm demo`", 1)
    if isinstance(error, ReconcileError):
        return (where, "rows went missing between reading and writing: report it with the log file attached", 4)
    if isinstance(error, FileNotFoundError):
        return (where, "create or restore the missing path named above; `finmm demo --force` redoes every stage",
                1)
    return (where, "read the traceback in the log; `finmm demo --verbose` shows Ray's output as it happens; "
            "a rerun resumes after the last completed stage", 1)


def _stage(stages: Stages, timings: list, console: Console, name: str, run) -> None:
    if (record := stages.done(name)) is not None:
        console.print(f"[dim]{name}: complete from an earlier run, skipped (--force redoes it)[/]")
        timings.append((name, "skipped", record["seconds"]))
        return
    console.rule(f"[bold]{name}", style="dim")
    t0 = time.perf_counter()
    try:
        outputs = run()
    except (KeyboardInterrupt, StageFailed):
        raise
    except Exception as exc:
        raise StageFailed(name, exc) from exc
    seconds = time.perf_counter() - t0
    stages.finish(name, outputs, seconds)
    timings.append((name, "ran", seconds))


def _prepare(settings: FinMMSettings, console: Console, noise: Console) -> list[Path]:
    from actors.pipeline import prepare
    from finmm.progress import stage_progress

    progress = stage_progress(console)
    tasks: dict[str, int] = {}

    kept: list[str] = []

    def report(dataset: str, stage: str) -> None:
        if dataset == "tokenizer" and stage.startswith("kept "):
            kept.append(stage.split()[1])  # the version prepare kept (actors.pipeline._tokenizer_for)
        if dataset not in tasks:
            tasks[dataset] = progress.add_task(f"{dataset:<22} {stage}", total=None)
        if stage == "done":
            progress.update(tasks[dataset], total=1, completed=1)
        else:
            progress.update(tasks[dataset], description=f"{dataset:<22} {stage}")

    with progress:
        summaries = prepare(settings.data, None, report)
        if "tokenizer" in tasks:
            done = f"kept {kept[-1]}" if kept else "built"
            progress.update(tasks["tokenizer"], total=1, completed=1, description=f"{'tokenizer':<22} {done}")
        for s in summaries:
            splits = " · ".join(f"{k} {v}" for k, v in s.splits.items())
            rejected = sum(s.rejected.values())
            progress.update(tasks[s.dataset], total=1, completed=1,
                            description=f"{s.dataset:<22} {splits} rows written, {rejected} rejected")
    from finmm.prepare_command import summary_table

    noise.print(summary_table(summaries))
    out = Path(settings.data.output_dir)
    return [out / name / "manifest.json" for name in settings.data.datasets]


def _run_dir(settings: FinMMSettings, name: str) -> Path:
    return Path(settings.cluster.storage_path).resolve() / name / "metrics.jsonl"


def _pretrain(settings: FinMMSettings, console: Console) -> list[Path]:
    from cluster.trainer import _run_name, pretrain
    from finmm.progress import follow_training

    name = _run_name("pretrain", settings.model.preset)
    with follow_training(console, "pretrain", _run_dir(settings, name), settings.pretrain.max_steps):
        outcome = pretrain(settings, name=name)
    return [outcome.model_dir / "model.safetensors"]


def _finetune(settings: FinMMSettings, console: Console) -> list[Path]:
    from cluster.trainer import _run_name, finetune
    from finmm.progress import follow_training

    name = _run_name("finetune", "+".join(TASKS))
    with follow_training(console, "finetune", _run_dir(settings, name), settings.finetune.max_steps):
        outcome = finetune(settings, TASKS, name=name)
    return [outcome.model_dir / "model.safetensors"]


def _evaluate(settings: FinMMSettings, console: Console, noise: Console, quick: bool) -> list[Path]:
    from finmm.evaluate_command import report_dir, run_evaluate, run_report
    from finmm.progress import stage_progress

    model_dir = Path(settings.finetune.output_dir) / "latest"
    progress = stage_progress(console)
    with progress:
        for task in TASKS:
            item = progress.add_task(f"{task:<22} finmm and the baselines on the test split", total=None)
            run_evaluate(settings, task, noise, model_dir=model_dir, quick=quick,
                         datasets=list(settings.data.datasets), ablations=quick)
            progress.update(item, total=1, completed=1, description=f"{task:<22} scored")
        run_report(settings, noise)
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


def _summary(console: Console, settings: FinMMSettings, timings, answers, root: Path, total_s: float, quick: bool,
             url: str, keep_serving: bool, log_path: Path | None) -> None:
    """One screen: what was trained, the figures next to the best baselines, where things are, what next."""
    console.rule("[bold]finmm demo: summary", style="dim")
    ran = " · ".join(f"{name} {seconds:.0f} s" + (" (earlier run)" if status == "skipped" else "")
                     for name, status, seconds in timings)
    console.print(f"[bold]stages[/] {ran} · total {total_s / 60:.1f} min", highlight=False)
    for line in _trained_lines(settings, quick):
        console.print(line, highlight=False)
    figures = _figures_table(root / "reports")
    if figures is not None:
        console.print(figures)
    if quick:
        console.print("[dim]--quick scores a tiny model after a few steps on 64 rows per split: the figures show "
                      "that every stage works, not what finmm can reach; `finmm demo` trains the small model.[/]",
                      highlight=False)
    console.print("[bold]sample requests[/]")
    for a in answers:
        answer = a["answer"] if a["ok"] else f"[red]{a['answer']}[/]"
        console.print(f"  {a['endpoint']:<22} {answer}  [dim]({a['ms']:.0f} ms)[/]", highlight=False)
    console.print(f"[bold]reports[/]  {root / 'reports' / 'index.md'} (per task: .md, .json and PNG plots)",
                  highlight=False)
    state = "up now, Ctrl-C stops it" if keep_serving else "run `finmm serve` (or `finmm demo --keep-serving`)"
    console.print(f"[bold]console[/]  {url}/ ({state}); API docs at {url}/docs", highlight=False)
    if log_path:
        console.print(f"[bold]log[/]      {log_path}", highlight=False)
    console.print("[bold]go further[/]", highlight=False)
    for what, command in [
        ("full finetune, one task", "finmm finetune --recipe cluster/recipes/sentiment.yaml  (or credit_risk, "
                                    "customer_service, stock_movement)"),
        ("search its settings", "finmm tune --task sentiment --num-samples 8"),
        ("on a Ray cluster", "finmm submit --address http://HEAD:8265 -- finetune --recipe "
                             "cluster/recipes/sentiment.yaml"),
    ]:
        console.print(f"  {what:<24} [cyan]{command}[/]", highlight=False)


def _train_rows(settings: FinMMSettings, datasets) -> tuple[int, list[str]]:
    """Train rows written for the prepared ones of `datasets`, and their names."""
    total, names = 0, []
    for name in dict.fromkeys(datasets):
        path = Path(settings.data.output_dir) / name / "manifest.json"
        if path.exists():
            total += int(json.loads(path.read_text()).get("splits", {}).get("train", 0))
            names.append(name)
    return total, names


def _trained_lines(settings: FinMMSettings, quick: bool) -> list[str]:
    from cluster.tasks import task_spec

    pre, fin = settings.pretrain, settings.finetune
    init = "from MiniLM" if settings.model.init_from_minilm else "from random weights"
    fin_rows, fin_sets = _train_rows(settings, [d for t in TASKS for d in task_spec(t, settings.data).datasets])
    if QUICK_PRETRAINS if quick else DEFAULT_PRETRAINS:
        pre_rows, pre_sets = _train_rows(settings, [*pre.text_datasets, *pre.tabular_datasets, *pre.pair_datasets])
        pretrained = (f"pretrain {pre.max_steps} steps x batch {pre.batch_size} x {pre.num_workers} workers on "
                      f"{pre_rows:,} train rows of {len(pre_sets)} data sets;")
    else:
        pretrained = "no pretraining;"
    if fin.task_epochs:
        length = "interleaved, " + ", ".join(f"{t} {fin.task_epochs[t]:g}" for t in TASKS) + " passes"
    else:
        length = (f"{fin.max_steps} steps" if fin.max_steps else f"{fin.epochs} epochs") + ", the four tasks at once"
    return [
        f"[bold]trained[/]  the {settings.model.preset} model {init}, {pretrained}",
        f"         finetune ({length}) x batch {fin.batch_size} x {fin.num_workers} workers on {fin_rows:,} "
        f"train rows of {len(fin_sets)} data sets (best validation round kept)",
    ]


def _figures_table(folder: Path) -> Table | None:
    """finmm's figure next to the best baseline per data set, with plain words for the gap."""
    from rich import box

    from evaluation.report import PRIMARY
    from finmm.evaluate_command import report_figures

    table = Table("data set", "metric", "finmm", "best baseline", "verdict", box=box.SIMPLE_HEAD,
                  title="test figures (reports' primary metric)", title_justify="left", pad_edge=False)
    count = 0
    for name, _, value, best in report_figures(folder):
        metric = {"auc_mean": "AUC (5-fold CV)", "test AUC (richest inputs)": "AUC"}.get(PRIMARY.get(name, ""),
                                                                                     PRIMARY.get(name, ""))
        table.add_row(name, metric, f"{value:.3f}" if value is not None else "-",
                      f"{best[1]:.3f} {best[0][:26]}" if best else "-", _verdict(name, value, best))
        count += 1
    return table if count else None


def _verdict(name: str, value: float | None, best: tuple[str, float] | None) -> str:
    if value is None:
        return "[dim]finmm not measured here (see the report)[/]"
    if name == "stocknet" and abs(value) < 0.05:
        return "no signal (MCC near 0)" + (", like the baselines" if best and abs(best[1]) < 0.05 else "")
    if best is None:
        return ""
    gap = value - best[1]
    if gap >= 0:
        return f"[green]finmm ahead by {gap:.3f}[/]"
    return f"[red]finmm loses[/] by {-gap:.3f}"


__all__ = ["run_demo", "demo_settings", "load_settings"]
