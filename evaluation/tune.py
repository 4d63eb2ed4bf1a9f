"""Hyperparameter search for `finmm finetune` with Ray Tune: ASHA over the validation split, never test.

Each trial is one Ray Train run (`cluster.trainer.finetune`, a TorchTrainer with DeepSpeed) called from a
Tune function trainable. The trainer scores the validation split after every epoch and appends the figures
to `<run_dir>/metrics.jsonl`; the trainable follows that file and reports each epoch's validation score to
Tune, so ASHA can stop weak trials after their first epochs. The best trial's settings are written back as a
recipe (`cluster/recipes/<tasks joined by +>.tuned.yaml`) that `finmm finetune --recipe` takes (see
`evaluation.recipes`).

Trials are sampled with `finetune.seed`, so the same seed gives the same trials. A trial that Tune stops
(ASHA, or its last epoch) loses its actor, and with it the nested trainer's controller; the trainer's placement
group would then keep its CPUs, so `ReleaseStoppedTrials` removes it once the actor has exited.

Search space (dotted config keys): learning rate (log-uniform), epochs and per-worker batch size; when
several tasks are tuned together (`finmm tune --tasks a,b`), also each task's loss weight
(`finetune.loss_weights.<task>`), and the score is the mean of the tasks' validation scores. With one task a
loss weight would only rescale the gradient, so it is left out.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ray.tune import Callback

from cluster.placement_groups import release_placement_group
from cluster.tasks import task_spec
from evaluation.recipes import RECIPES_DIR, write_recipe

SCORE = "score"
TRIAL_CPU = 0.01
"""CPUs the Tune trial actor itself holds (Tune refuses 0); its nested TorchTrainer workers hold the rest."""


def fit_worker_cpus(settings, max_concurrent: int, cluster_cpus: float | None = None) -> float:
    """finetune.cpus_per_worker, lowered if needed so that `max_concurrent` trials (each a trial actor plus
    num_workers trainer workers) fit on the cluster; otherwise the trainers wait for CPUs forever."""
    import ray

    cpus = cluster_cpus if cluster_cpus is not None else float(ray.cluster_resources().get("CPU", 1.0))
    trainer = settings.finetune
    room = (cpus - TRIAL_CPU * max_concurrent) / (trainer.num_workers * max_concurrent)
    return round(min(trainer.cpus_per_worker, room * 0.99), 3)


def search_space(settings, tasks: list[str]) -> dict:
    """Tune distributions keyed by dotted config key."""
    from ray import tune

    space = {
        "finetune.learning_rate": tune.loguniform(1e-5, 2e-4),
        "finetune.epochs": tune.choice([1, 2, 3, 4]),
        "finetune.batch_size": tune.choice([16, 32, 64]),
    }
    if len(tasks) > 1:
        for task in tasks:
            space[f"finetune.loss_weights.{task}"] = tune.uniform(0.25, 2.0)
    return space


def validation_score(metrics: dict, task: str, data=None) -> float | None:
    """Mean over the task's data sets of `val/<dataset>/<selection metric>`, or None if absent (`data`: the
    data section, for declared tasks)."""
    spec = task_spec(task, data)
    values = [metrics[f"val/{d}/{spec.selection_metric}"] for d in spec.datasets
              if f"val/{d}/{spec.selection_metric}" in metrics]
    return sum(values) / len(values) if values else None


def tasks_score(metrics: dict, tasks: list[str], data=None) -> float | None:
    """Mean of validation_score over `tasks`, or None unless every task has one."""
    scores = [validation_score(metrics, t, data) for t in tasks]
    return None if any(v is None for v in scores) else sum(scores) / len(scores)


def apply_overrides(base: dict, overrides: dict) -> dict:
    """A copy of the settings dict `base` with dotted keys set."""
    out = json.loads(json.dumps(base))
    for dotted, value in overrides.items():
        node = out
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _epoch_scores(metrics_path: Path, tasks: list[str], seen: int, data=None) -> list[tuple[float, float]]:
    """(epoch, score) of validation lines after the first `seen` ones."""
    if not metrics_path.exists():
        return []
    found = []
    for line in metrics_path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        score = tasks_score(record, tasks, data)
        if score is not None:
            found.append((float(record.get("epoch", len(found) + 1)), score))
    return found[seen:]


RUN_NAME = "run"
"""Name of each trial's finetune run, under `<work_dir>/<trial id>/runs/`."""


def trial_run_dir(work_dir: str | Path, trial_id: str) -> Path:
    return Path(work_dir) / trial_id / "runs" / RUN_NAME


TRIAL_ACTOR_FILE = "trial_actor.txt"
"""File in a trial's folder holding the id of the Tune actor that runs it (the owner of its nested trainer)."""


def release_stopped_trial(work_dir: str | Path, trial_id: str, wait_s: float = 0.0) -> bool | None:
    """Free the CPUs of a trial's trainer if the trial was stopped mid-`fit()` (see cluster.placement_groups),
    once the trial's actor has exited. True: released; False: nothing held; None: the actor is still alive."""
    owner = Path(work_dir) / trial_id / TRIAL_ACTOR_FILE
    if not owner.exists():
        return False
    return release_placement_group(trial_run_dir(work_dir, trial_id), owner.read_text().strip(), wait_s)


class ReleaseStoppedTrials(Callback):
    """Tune callback (runs in the driver). Tune stops a trial (ASHA early stop, or the stop at the last epoch)
    by ending its actor, which can cut its nested `fit()` short and leave the trainer's CPUs reserved; the
    next trial's trainer would wait for them forever. Each ended trial is checked at every step of Tune's loop
    until its actor has exited, and its trainer's placement group is then removed if it is still there."""

    def __init__(self, work_dir: Path):
        self.work_dir = work_dir
        self.pending: set[str] = set()
        self.released: list[str] = []

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.pending.add(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.pending.add(trial.trial_id)

    def on_step_begin(self, iteration, trials, **info):
        self.sweep()

    def on_experiment_end(self, trials, **info):
        self.sweep(wait_s=30.0)

    def sweep(self, wait_s: float = 0.0) -> None:
        for trial_id in sorted(self.pending):
            outcome = release_stopped_trial(self.work_dir, trial_id, wait_s)
            if outcome is None:
                continue  # its actor is still stopping
            self.pending.discard(trial_id)
            if outcome:
                self.released.append(trial_id)


def trial(config: dict) -> None:
    """Tune function trainable: one finetune with the sampled overrides, reporting validation per epoch."""
    from ray import tune

    tasks, base, overrides = config["tasks"], config["base"], config["overrides"]
    settings_type = config["settings_type"]  # the composed settings class, passed in by the caller
    trial_dir = Path(config["work_dir"]) / tune.get_context().get_trial_id()
    run_dir = trial_run_dir(config["work_dir"], tune.get_context().get_trial_id())
    settings = settings_type.model_validate(apply_overrides(base, overrides | {
        "cluster.storage_path": str(run_dir.parent), "finetune.output_dir": str(trial_dir / "model")}))
    import ray

    from cluster.trainer import finetune

    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / TRIAL_ACTOR_FILE).write_text(ray.get_runtime_context().get_actor_id())

    box: dict = {}
    worker = threading.Thread(target=lambda: box.update(outcome=_catch(finetune, settings, tasks, name=RUN_NAME)),
                              daemon=True)
    worker.start()
    metrics_path = run_dir / "metrics.jsonl"
    reported = 0
    while worker.is_alive() or reported == 0:
        for epoch, score in _epoch_scores(metrics_path, tasks, reported, settings.data):
            tune.report({SCORE: score, "epoch": epoch})
            reported += 1
        if not worker.is_alive():
            break
        time.sleep(2.0)
    for epoch, score in _epoch_scores(metrics_path, tasks, reported, settings.data):
        tune.report({SCORE: score, "epoch": epoch})
        reported += 1
    error = box.get("outcome")
    if isinstance(error, BaseException):
        raise error
    if reported == 0:
        raise RuntimeError(f"trial finished without a validation score in {metrics_path}")


def _catch(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:  # re-raised in the trainable's thread
        return exc


@dataclass
class TuneOutcome:
    metric: str
    best_score: float
    best_overrides: dict
    recipe_path: Path
    trials: list[dict]
    released_trials: list[str]
    """Trials stopped before their trainer freed its CPUs, whose placement group the driver removed."""


def tune_task(settings, tasks: str | list[str], *, num_samples: int = 8, max_concurrent: int = 1,
              work_dir: str | Path = "artifacts/tune", recipe_path: str | Path | None = None) -> TuneOutcome:
    """ASHA search for one task, or several finetuned together (validation split only); writes the best
    settings as a recipe."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    label = "+".join(tasks)
    metric = "/".join(sorted({task_spec(t, settings.data).selection_metric for t in tasks}))
    work_dir = Path(work_dir).resolve() / label
    space = search_space(settings, tasks)
    max_epochs = 4
    base = settings.model_dump(mode="json")
    base["finetune"]["cpus_per_worker"] = fit_worker_cpus(settings, max_concurrent)
    param_space = {"tasks": tasks, "base": base, "settings_type": type(settings), "work_dir": str(work_dir),
                   "overrides": space}
    releaser = ReleaseStoppedTrials(work_dir)
    trainable = tune.with_resources(trial, {"CPU": TRIAL_CPU})  # the nested TorchTrainer reserves the rest
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=SCORE, mode="max", num_samples=num_samples,
            # the generator itself limits concurrency: Tune ignores max_concurrent_trials for a given generator
            search_alg=BasicVariantGenerator(max_concurrent=max_concurrent, random_state=settings.finetune.seed),
            scheduler=ASHAScheduler(time_attr="training_iteration", max_t=max_epochs, grace_period=1,
                                    reduction_factor=2)),
        run_config=tune.RunConfig(name=f"tune-{label}", storage_path=str(work_dir), callbacks=[releaser]),
    )
    grid = tuner.fit()
    scored = [r for r in grid if r.metrics and SCORE in r.metrics]
    if not scored:
        errors = [r.error for r in grid if r.error is not None]
        raise RuntimeError(f"no tune trial reported a validation score ({len(errors)} failed); first error: "
                           f"{errors[0] if errors else 'none'}")
    best = max(scored, key=lambda r: r.metrics[SCORE])  # last reported epoch of each trial
    overrides = dict(best.config["overrides"])
    trials = [{"overrides": r.config["overrides"], SCORE: (r.metrics or {}).get(SCORE),
               "error": str(r.error) if r.error else None} for r in grid]
    recipe_path = Path(recipe_path) if recipe_path else RECIPES_DIR / f"{label}.tuned.yaml"
    score = float(best.metrics[SCORE])
    write_recipe(recipe_path, {"finetune.tasks": tasks, "model.preset": settings.model.preset, **overrides},
                 comment=f"written by `finmm tune --tasks {','.join(tasks)}`: best of {len(trials)} trials (ASHA), "
                         f"validation {metric} {score:.4f}.\nChosen on the validation split only.")
    return TuneOutcome(metric, score, overrides, recipe_path, trials, releaser.released)
