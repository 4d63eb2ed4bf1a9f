"""The `finmm` command line. Every command takes `--config PATH` and dotted overrides."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from finmm.config import ConfigError, FinMMSettings, iter_fields, load_settings

app = typer.Typer(help="Pretrain, finetune and serve one multimodal Transformer for finance, on Ray.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
config_app = typer.Typer(help="Show and check ray_config.yaml.", no_args_is_help=True)
app.add_typer(config_app, name="config")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

CONFIG_OPTION = typer.Option(None, "--config", "-c", help="Config file (default ./ray_config.yaml).")
OVERRIDES = typer.Argument(None, help="Dotted overrides such as data.text.max_length=128.", show_default=False)


def settings_or_exit(config: Path | None, overrides: list[str] | None) -> FinMMSettings:
    """Load the config, or print what is wrong with it and exit with code 2."""
    try:
        return load_settings(config, overrides or [])
    except ConfigError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None


@config_app.command("show")
def config_show(config: Path | None = CONFIG_OPTION, overrides: list[str] | None = OVERRIDES) -> None:
    """Print every config field with its value and what it means."""
    settings = settings_or_exit(config, overrides)
    values = settings.model_dump(mode="json")
    for key, annotation, _default, doc in iter_fields():
        if annotation == "section":
            console.print(f"\n[bold]{key}[/]  [dim]# {doc}[/]", highlight=False)
            continue
        value = values
        for part in key.split("."):
            value = value[part]
        console.print(f"  {key} = {value!r}  [dim]({annotation}) {doc}[/]", highlight=False)


@config_app.command("validate")
def config_validate(path: Path = typer.Argument(Path("ray_config.yaml"), help="Config file to check.")) -> None:
    """Check a config file; exit 2 with a precise message when it is wrong."""
    if not path.exists():
        err_console.print(f"error: config file {path} does not exist", highlight=False)
        raise typer.Exit(2)
    settings_or_exit(path, [])
    console.print(f"{path}: valid")


@app.command()
def prepare(
    overrides: list[str] | None = OVERRIDES,
    datasets: str | None = typer.Option(None, "--datasets", help="Comma-separated data sets (default: data.datasets)."),
    rebuild_tokenizer: bool = typer.Option(
        False, "--rebuild-tokenizer",
        help="Build data.output_dir/tokenizer.json again instead of keeping it; data sets prepared with the old "
             "one must then be prepared again before training or evaluation."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Preprocess the raw data sets into Parquet shards with one Ray Data actor pool per modality."""
    settings = settings_or_exit(config, overrides)
    from finmm.prepare_command import run_prepare

    names = [d.strip() for d in datasets.split(",") if d.strip()] if datasets else None
    raise typer.Exit(run_prepare(settings, names, console, rebuild_tokenizer=rebuild_tokenizer))


@app.command()
def demo(
    overrides: list[str] | None = OVERRIDES,
    quick: bool = typer.Option(False, "--quick", help="tiny model and small slices of the data: a few minutes."),
    force: bool = typer.Option(False, "--force", help="Redo stages that an earlier run completed."),
    keep_serving: bool = typer.Option(False, "--keep-serving", help="Leave the server up after the requests."),
    verbose: bool = typer.Option(False, "--verbose", help="Show the output of Ray, its workers and DeepSpeed "
                                 "here instead of in artifacts/logs/demo-<time>.log."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Run the main job end to end on a local Ray cluster: prepare, pretrain, finetune, evaluate, serve, ask."""
    settings = settings_or_exit(config, overrides)
    from finmm.demo import run_demo
    from finmm.run_log import RunLog

    with RunLog("demo", verbose=verbose) as log:
        code = run_demo(settings, quick=quick, console=log.console, force=force, keep_serving=keep_serving,
                        noise=log.noise, err_console=log.err_console, log_path=log.path)
    raise typer.Exit(code)


RESUME_OPTION = typer.Option(None, "--resume", help="A run folder to continue from its latest checkpoint.")


@app.command()
def pretrain(
    overrides: list[str] | None = OVERRIDES,
    recipe: Path | None = typer.Option(None, "--recipe", help="A recipe file (e.g. cluster/recipes/cjk_warmstart"
                                       ".yaml) applied before the command-line overrides."),
    resume: Path | None = RESUME_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Pretrain the model (MLM + image-text contrastive + masked features) with Ray Train + DeepSpeed."""
    settings = settings_or_exit(config, with_recipe(recipe, overrides))
    from cluster.trainer import pretrain as run_pretrain
    from finmm.ray_runtime import ensure_ray

    ensure_ray(settings.cluster)
    outcome = run_pretrain(settings, resume=resume)
    console.print(f"pretrained in {outcome.wall_s:.0f} s; run {outcome.run_dir}; model {outcome.model_dir}")


def with_recipe(recipe: Path | None, overrides: list[str] | None) -> list[str] | None:
    """The recipe file's keys as overrides, before the command line's own (which win)."""
    if recipe is None:
        return overrides
    from evaluation.recipes import load_recipe

    return [*load_recipe(recipe), *(overrides or [])]


@app.command()
def finetune(
    overrides: list[str] | None = OVERRIDES,
    task: str | None = typer.Option(None, "--task", help="One task: credit_risk, stock_movement, sentiment, "
                                    "customer_service, or one declared under data.tasks."),
    tasks: str | None = typer.Option(None, "--tasks", help="Several tasks at once, comma-separated."),
    recipe: Path | None = typer.Option(None, "--recipe", help="A recipe file (cluster/recipes/<task>.yaml) applied "
                                       "before the command-line overrides."),
    resume: Path | None = RESUME_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Finetune one or several tasks with Ray Train + DeepSpeed; validation metrics after each epoch."""
    settings = settings_or_exit(config, with_recipe(recipe, overrides))
    from cluster.trainer import finetune as run_finetune
    from finmm.ray_runtime import ensure_ray

    names = _task_names(task, tasks, settings)
    ensure_ray(settings.cluster)
    outcome = run_finetune(settings, names, resume=resume)
    console.print(f"finetuned {', '.join(names)} in {outcome.wall_s:.0f} s; model {outcome.model_dir}")
    for key, value in sorted(outcome.metrics.items()):
        if key.startswith("val/"):
            console.print(f"  {key} = {value:.4f}")


@app.command()
def evaluate(
    overrides: list[str] | None = OVERRIDES,
    task: str = typer.Option(..., "--task", help="credit_risk, stock_movement, sentiment, customer_service or a "
                             "task of data.tasks."),
    datasets: str | None = typer.Option(None, "--datasets", help="Only these of the task's data sets, "
                                        "comma-separated (e.g. your own credit data set without Lending Club)."),
    model_dir: Path | None = typer.Option(None, "--model-dir", help="The finetuned folder to score (default: "
                                          "the newest one under finetune.output_dir with the task's head)."),
    quick: bool = typer.Option(False, "--quick", help="300 rows per split: a smoke run, not a figure."),
    german_cv: bool = typer.Option(False, "--german-cv", help="credit_risk: also run finmm's German Credit 5-fold "
                                   "CV (five finetunes with the finetune.* settings; combine with --recipe)."),
    recipe: Path | None = typer.Option(None, "--recipe", help="A recipe file applied before the overrides "
                                       "(the German CV finetunes use its finetune.* and model.* keys)."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Score finmm and the baselines on the task's test splits (EVAL.md); write artifacts/reports/<task>.*"""
    settings = settings_or_exit(config, with_recipe(recipe, overrides))
    if task == "opinion":  # the opinion index of `finmm opinion replay` vs returns (finmm/opinion_command.py)
        from finmm.opinion_command import run_opinion_evaluate

        raise typer.Exit(run_opinion_evaluate(settings, console))
    from finmm.evaluate_command import run_evaluate

    names = [d.strip() for d in datasets.split(",") if d.strip()] if datasets else None
    raise typer.Exit(run_evaluate(settings, task, console, model_dir=model_dir, quick=quick, german_cv=german_cv,
                                  datasets=names))


@app.command()
def report(overrides: list[str] | None = OVERRIDES, config: Path | None = CONFIG_OPTION) -> None:
    """Gather every task report into artifacts/reports/index.md."""
    settings = settings_or_exit(config, overrides)
    from finmm.evaluate_command import run_report

    raise typer.Exit(run_report(settings, console))


def _task_names(task: str | None, tasks: str | None, settings) -> list[str]:
    """--tasks, else --task, else finetune.tasks; exits 2 naming any unknown task."""
    from cluster.tasks import task_specs

    known = task_specs(settings.data)  # the built-ins and data.tasks
    names = [t.strip() for t in (tasks or task or ",".join(settings.finetune.tasks)).split(",") if t.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        err_console.print(f"error: unknown task(s) {unknown}; choose from {', '.join(known)} (declare your own "
                          f"under data.tasks)", highlight=False)
        raise typer.Exit(2)
    return names


@app.command()
def tune(
    overrides: list[str] | None = OVERRIDES,
    task: str | None = typer.Option(None, "--task", help="The task whose finetune hyperparameters are searched."),
    tasks: str | None = typer.Option(None, "--tasks", help="Several tasks finetuned together, comma-separated; "
                                     "their loss weights are searched too."),
    num_samples: int = typer.Option(8, "--num-samples", help="Trials (Ray Train runs)."),
    max_concurrent: int = typer.Option(1, "--max-concurrent", help="Trials at once."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Ray Tune (ASHA) on the validation split only; writes the best trial as a recipe file."""
    settings = settings_or_exit(config, overrides)
    from finmm.evaluate_command import run_tune

    names = _task_names(task, tasks, settings)
    raise typer.Exit(run_tune(settings, names, console, num_samples=num_samples, max_concurrent=max_concurrent))


@app.command("serve")
def serve_command(
    overrides: list[str] | None = OVERRIDES,
    model_dir: Path | None = typer.Option(None, "--model-dir", help="A save_pretrained folder (default: "
                                          "serve.model_dir, else artifacts/finetune/latest)."),
    build: Path | None = typer.Option(None, "--build", help="Only write a Ray Serve config for `serve deploy`."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Serve the four HTTP endpoints from a finetuned model on serve.http.host:port (127.0.0.1:8000)."""
    settings = settings_or_exit(config, overrides)
    from finmm.serve_command import run_serve

    raise typer.Exit(run_serve(settings, model_dir, build, console, config_path=config))


@app.command()
def scale(
    deployment: str = typer.Argument(..., help="Deployment name, e.g. Backbone, Sentiment, Credit."),
    replicas: int = typer.Argument(..., min=0, help="The new replica count."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Change a deployment's replica count on the running app."""
    settings = settings_or_exit(config, [])
    from finmm.serve_command import run_scale

    raise typer.Exit(run_scale(settings, deployment, replicas, console))


data_app = typer.Typer(help="Declare your own data set (data.declared) and check it against its files.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("infer")
def data_infer(
    file: Path = typer.Argument(..., help="A CSV, TSV, Parquet or JSON Lines table."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Propose a declaration for FILE (column roles, label, split) as YAML to edit."""
    settings = settings_or_exit(config, [])
    from finmm.data_command import run_infer

    raise typer.Exit(run_infer(settings, file, console, err_console))


@data_app.command("check")
def data_check(
    name: str = typer.Argument(..., help="A declared (or built-in) data set."),
    overrides: list[str] | None = OVERRIDES,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Read data set NAME as `finmm prepare` would: counts per split, class balance, rejects by reason."""
    settings = settings_or_exit(config, overrides)
    from finmm.data_command import run_check

    raise typer.Exit(run_check(settings, name, console, err_console))


from finmm.opinion_command import opinion_app  # noqa: E402 (`finmm opinion replay`)

app.add_typer(opinion_app, name="opinion")

jobs_app = typer.Typer(help="Manage jobs on a running Ray cluster.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
ADDRESS_OPTION = typer.Option(None, "--address", help="Ray Jobs API address (default cluster.job_address).")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def submit(
    finmm_args: list[str] = typer.Argument(..., help="The finmm command to run, after --."),
    address: str | None = ADDRESS_OPTION,
    follow: bool = typer.Option(True, "--wait/--no-wait", help="Follow the job until it ends."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Send `finmm <command>` to a running Ray cluster, with this repository as the working dir."""
    from cluster import jobs

    settings = settings_or_exit(config, [])
    try:
        job_id = jobs.submit(settings.cluster, finmm_args, address=address)
        console.print(f"submitted {job_id}")
        if not follow:
            return
        final = jobs.wait(
            settings.cluster, job_id, address=address, on_status=lambda s: console.print(f"{job_id}: {s}")
        )
    except jobs.ClusterUnreachableError as exc:
        err_console.print(f"error: {exc}", highlight=False)
        raise typer.Exit(3) from None
    raise typer.Exit(0 if final == "SUCCEEDED" else 1)


def _jobs_call(fn, config: Path | None, *args, address: str | None = None):
    from cluster import jobs

    settings = settings_or_exit(config, [])
    try:
        return fn(settings.cluster, *args, address=address)
    except jobs.ClusterUnreachableError as exc:
        err_console.print(f"error: {exc}", highlight=False)
        raise typer.Exit(3) from None


@jobs_app.command("list")
def jobs_list(address: str | None = ADDRESS_OPTION, config: Path | None = CONFIG_OPTION) -> None:
    """List the cluster's jobs."""
    from cluster import jobs

    table = Table("submission id", "status", "entrypoint")
    for job in _jobs_call(jobs.list_jobs, config, address=address):
        table.add_row(job["submission_id"] or "", job["status"], job["entrypoint"])
    console.print(table)


@jobs_app.command("status")
def jobs_status(job_id: str, address: str | None = ADDRESS_OPTION, config: Path | None = CONFIG_OPTION) -> None:
    """Print one job's status."""
    from cluster import jobs

    console.print(_jobs_call(jobs.status, config, job_id, address=address))


@jobs_app.command("logs")
def jobs_logs(job_id: str, address: str | None = ADDRESS_OPTION, config: Path | None = CONFIG_OPTION) -> None:
    """Print one job's logs."""
    from cluster import jobs

    console.print(_jobs_call(jobs.logs, config, job_id, address=address), highlight=False, markup=False)


@jobs_app.command("stop")
def jobs_stop(job_id: str, address: str | None = ADDRESS_OPTION, config: Path | None = CONFIG_OPTION) -> None:
    """Stop a running job."""
    from cluster import jobs

    console.print("stopped" if _jobs_call(jobs.stop, config, job_id, address=address) else "not running")


def main() -> None:
    """Console-script entry point. Expected failures (missing inputs, bad values) print one clear line;
    set FINMM_DEBUG=1 to see the traceback."""
    import os

    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except (FileNotFoundError, ValueError) as exc:
        if os.environ.get("FINMM_DEBUG"):
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
