"""Driver side of `finmm pretrain` and `finmm finetune`: build the Ray Train TorchTrainer and run it."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from actors.collate import BatchLayout
from actors.manifest import TOKENIZER
from actors.settings import DATASET_NAMES
from actors.tabular import TabularState
from actors.versions import bundle_versions, check_init_bundle, check_prepared
from cluster.checkpoints import BEST_MODEL_DIR, MODEL_DIR, SELECTION_FILE, copy_model_folder, latest_checkpoint
from cluster.deepspeed_config import comm_backend
from cluster.loop_spec import LoopSpec
from cluster.settings import TrainerSettings
from cluster.streams import build_rank_datasets, pretrain_streams, read_manifest, task_stream
from cluster.task_schedule import interleaved_schedule, steps_for_epochs, validation_interval
from cluster.tasks import task_spec
from cluster.train_loop import train_loop_per_worker


@dataclass
class TrainingOutcome:
    run_dir: Path
    checkpoint: Path
    model_dir: Path
    """The exported `save_pretrained` folder (a copy of the last checkpoint's model/)."""
    metrics: dict
    wall_s: float


def batch_layout(settings, datasets: list[str] | tuple[str, ...] | None = None) -> BatchLayout:
    """The batch layout of a run over `datasets`: the tabular feature space holds exactly those data sets'
    fitted features, in the given order, never whatever else happens to be prepared on disk (preparing German
    Credit must not change the shape of a Lending Club model). `datasets=None` takes every prepared data set
    (the serving tests' multi-task bundles)."""
    data = settings.data
    layout = BatchLayout(image_size=data.image.image_size, series_days=data.series.window_days)
    names = DATASET_NAMES if datasets is None else datasets
    for name in dict.fromkeys(names):
        path = Path(data.output_dir) / name
        if not (path / "manifest.json").exists():
            if datasets is None:
                continue
            read_manifest(data.output_dir, name)  # raises: the run names a data set that is not prepared
        manifest = read_manifest(data.output_dir, name)
        tabular = manifest.get("state", {}).get("tabular")
        if tabular:
            layout.add_tabular(name, TabularState.from_dict(tabular))
    return layout


def _layout_of_bundle(folder: Path) -> BatchLayout | None:
    """The batch layout a saved bundle was trained with (its preprocessing state), if it records one."""
    from model.bundle import PREPROCESSING_FILE

    path = Path(folder) / PREPROCESSING_FILE
    if not path.exists():
        return None
    layout = json.loads(path.read_text()).get("layout")
    return BatchLayout.from_dict(layout) if layout else None


def _bundle_state(folder: Path) -> dict | None:
    from model.bundle import PREPROCESSING_FILE

    path = Path(folder) / PREPROCESSING_FILE
    return json.loads(path.read_text()) if path.exists() else None


def preprocessing_state(settings, layout: BatchLayout) -> dict:
    """What serving needs to preprocess a request exactly like training did (saved in the bundle)."""
    data = settings.data
    states = {}
    for name in data.dataset_names():  # the built-ins, then the declared ones
        if (Path(data.output_dir) / name / "manifest.json").exists():
            states[name] = read_manifest(data.output_dir, name).get("state", {})
    return {"layout": layout.to_dict(), "datasets": states, "data": data.model_dump(mode="json"),
            "versions": bundle_versions(data.output_dir, [b.dataset for b in layout.tabular])}


def served_tasks(settings, specs) -> dict:
    """What serving needs of each trained task (saved in the bundle): its registry entry (kind, head,
    endpoint, data sets prepared), its class names, and each data set's fields, so that the endpoint's request
    schema can list them (serve/declared.py)."""
    from cluster.tasks import dataset_classes, task_classes

    data = settings.data
    out = {}
    for task in specs:
        prepared = [d for d in task.datasets if (Path(data.output_dir) / d / "manifest.json").exists()]
        try:
            classes = task_classes(task, data.output_dir)
        except ValueError:
            classes = None
        fields = {}
        for d in prepared:
            block = data.declared.get(d)
            if block is not None:
                fields[d] = {**block.feature_columns(), "title": block.title or d}
        out[task.name] = {"kind": task.kind, "head": task.head, "endpoint": task.endpoint, "datasets": prepared,
                          "classes": classes, "selection_metric": task.selection_metric, "fields": fields,
                          "dataset_classes": {d: dataset_classes(data.output_dir, d) for d in prepared}}
    return out


def _vocab_size(tokenizer_path: Path) -> int:
    from tokenizers import Tokenizer

    if not tokenizer_path.exists():
        raise FileNotFoundError(f"{tokenizer_path} is missing: run `finmm prepare` before training")
    return Tokenizer.from_file(str(tokenizer_path)).get_vocab_size()


def _trainer_dict(trainer: TrainerSettings) -> dict:
    """Only the shared TrainerSettings fields travel to the workers."""
    return trainer.model_dump(mode="json", include=set(TrainerSettings.model_fields))


def _run_name(kind: str, label: str) -> str:
    return f"{kind}-{label}-{time.strftime('%Y%m%d-%H%M%S')}"


def _fit(spec: LoopSpec, trainer: TrainerSettings, datasets: dict, name: str, storage: Path,
         num_to_keep: int) -> None:
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig

    TorchTrainer = _torch_trainer_class()
    env_vars = {"RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
    if not trainer.use_gpu:
        env_vars["DS_ACCELERATOR"] = "cpu"  # never set on GPU hosts
    torch_trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=spec.to_dict(),
        torch_config=TorchConfig(backend=comm_backend(trainer)),
        scaling_config=ScalingConfig(
            num_workers=trainer.num_workers,
            use_gpu=trainer.use_gpu,
            resources_per_worker={"CPU": trainer.cpus_per_worker, **({"GPU": 1} if trainer.use_gpu else {})},
        ),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage),
            checkpoint_config=CheckpointConfig(num_to_keep=num_to_keep),
            failure_config=FailureConfig(max_failures=trainer.max_failures),
            worker_runtime_env={"env_vars": env_vars},
        ),
        datasets=datasets,
        dataset_config=DataConfig(datasets_to_split=[]),
    )
    # Resuming needs nothing more: Train V2 restores a run from the latest checkpoint it finds under
    # storage_path/name (`resume_from_checkpoint` is deprecated there), and _resolve_resume reuses both.
    torch_trainer.fit()


def state_api_available(timeout_s: int = 5) -> bool:
    """Whether the cluster answers Ray's state API (the dashboard's StateHead module). A local cluster started
    with `include_dashboard=False` runs its API server with `--modules-to-load=UsageStatsHead` only
    (ray/_private/services.py, start_api_server), so every state query fails there."""
    from ray.util.state import list_nodes

    try:
        list_nodes(limit=1, timeout=timeout_s, raise_on_missing_output=False)
    except Exception:  # RayStateApiException, or no API server address at all
        return False
    return True


def _torch_trainer_class():
    """TorchTrainer, less Ray Train's PlacementGroupCleanerCallback when the state API is off.

    That callback starts a detached PlacementGroupCleaner actor which asks the state API once a second whether
    the controller is alive (`is_actor_alive` -> `ray.util.state.get_actor`); without the state API each
    question raises, the cleaner logs "Failed to query Ray Train Controller actor state" and tries again, for
    the whole run, and it can never see the controller die, so it cleans nothing. Ray adds it unconditionally
    in DataParallelTrainer._create_default_callbacks (no setting or env var removes it), hence this subclass;
    finmm releases a dead run's placement group itself (cluster/placement_groups.py). See docs/training.md."""
    from ray.train.torch import TorchTrainer

    if not hasattr(TorchTrainer, "_create_default_callbacks") or state_api_available():
        return TorchTrainer
    from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback

    class TorchTrainerWithoutCleaner(TorchTrainer):
        def _create_default_callbacks(self):
            return [c for c in super()._create_default_callbacks()
                    if not isinstance(c, PlacementGroupCleanerCallback)]

    return TorchTrainerWithoutCleaner


def _resolve_resume(resume: Path | None) -> tuple[Path | None, str | None, Path | None]:
    if resume is None:
        return None, None, None
    resume = Path(resume).resolve()
    checkpoint = latest_checkpoint(resume)
    if checkpoint is None:
        raise FileNotFoundError(f"--resume {resume}: no complete checkpoint_* folder in it")
    return checkpoint, resume.name, resume.parent


def _finish(run_dir: Path, started: float, export_to: Path) -> TrainingOutcome:
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise RuntimeError(f"training ended without a checkpoint in {run_dir}")
    state = json.loads((checkpoint / "train_state.json").read_text())
    model_dir = copy_model_folder(checkpoint, export_to)
    best = Path(run_dir) / BEST_MODEL_DIR
    if (best / SELECTION_FILE).exists():  # finetuning: the best validation epoch, not the last step
        tmp = export_to.with_name(export_to.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(best, tmp)
        shutil.rmtree(export_to, ignore_errors=True)
        tmp.rename(export_to)
        selection = json.loads((best / SELECTION_FILE).read_text())
        print(f"[finmm] exported epoch {selection['epoch']:g} (step {selection['step']}): best "
              f"{selection['metric']} {selection['value']:.4f}", flush=True)
    else:
        (model_dir / SELECTION_FILE).write_text(json.dumps({"selected_by": "last step", "step": state["step"]}))
    return TrainingOutcome(run_dir, checkpoint, model_dir, state.get("metrics", {}), time.perf_counter() - started)


def pretrain(settings, resume: Path | None = None, name: str | None = None) -> TrainingOutcome:
    """Masked language modelling + image-text contrastive + masked feature modelling, on train splits only."""
    started = time.perf_counter()
    trainer, data = settings.pretrain, settings.data
    output_dir = Path(data.output_dir).resolve()
    streams = pretrain_streams(trainer, output_dir)
    check_prepared(output_dir, [d for s in streams for d in s.datasets])  # token ids of today's tokenizer
    layout = batch_layout(settings, [s.tabular_dataset for s in streams if s.tabular_dataset])
    datasets: dict = {}
    for stream in streams:
        datasets.update(build_rank_datasets(stream, output_dir, "train", trainer.num_workers, trainer.batch_size,
                                            trainer.seed))
    steps_per_epoch = max(math.ceil(max(s.micro_batches_per_epoch for s in streams)
                                    / trainer.deepspeed.gradient_accumulation_steps), 1)
    total = trainer.max_steps or trainer.epochs * steps_per_epoch
    _, resume_name, resume_storage = _resolve_resume(resume)  # raises if the run has no checkpoint
    storage = resume_storage or Path(settings.cluster.storage_path).resolve()
    name = resume_name or name or _run_name("pretrain", settings.model.preset)
    spec = LoopSpec(
        kind="pretrain", run_dir=str(storage / name), trainer=_trainer_dict(trainer),
        model=settings.model.model_dump(mode="json"), vocab_size=_vocab_size(output_dir / TOKENIZER),
        layout=layout.to_dict(), streams=[s.to_dict() for s in streams], total_steps=total,
        steps_per_epoch=steps_per_epoch, tokenizer_path=str(output_dir / TOKENIZER),
        preprocessing_state=preprocessing_state(settings, layout), trainable=trainer.trainable,
    )
    _fit(spec, trainer, datasets, name, storage, trainer.keep_checkpoints)
    return _finish(storage / name, started, Path(trainer.output_dir) / "latest")


def latest_pretrained(settings) -> Path | None:
    folder = Path(settings.pretrain.output_dir) / "latest"
    return folder if (folder / "model.safetensors").exists() else None


def _stream_groups(prepared: tuple[str, ...], output_dir: Path) -> list[tuple[str, ...]]:
    """The task's data sets as training streams: each tabular data set alone (a stream fills one data set's
    tabular block: two credit data sets have different features), the others together."""
    tabular = [d for d in prepared if "tabular" in read_manifest(output_dir, d).get("modalities", [])]
    rest = tuple(d for d in prepared if d not in tabular)
    if len(tabular) <= 1:
        return [prepared]
    return [(d,) for d in tabular] + ([rest] if rest else [])


def finetune(settings, tasks: list[str], resume: Path | None = None, name: str | None = None) -> TrainingOutcome:
    """Finetune one or several tasks at once (one stream and one head per task)."""
    started = time.perf_counter()
    trainer, data = settings.finetune, settings.data
    output_dir = Path(data.output_dir).resolve()
    specs = [task_spec(t, data) for t in tasks]
    shared = [h for h in {s.head for s in specs} if sum(s.head == h for s in specs) > 1]
    if shared:
        raise ValueError(f"tasks {[s.name for s in specs if s.head in shared]} train the same head {shared[0]!r}; "
                         f"finetune them in separate runs")
    modalities = tuple(trainer.input_modalities) if trainer.input_modalities else None
    streams, datasets, validation, heads, stream_tasks = [], {}, [], {}, []
    for task in specs:
        prepared = tuple(d for d in task.datasets if (output_dir / d / "manifest.json").exists())
        if not prepared:
            raise FileNotFoundError(
                f"task {task.name} trains on {', '.join(task.datasets)}, none of which is prepared under "
                f"{output_dir}; run `finmm prepare --datasets {','.join(task.datasets)}` first"
            )
        for group in _stream_groups(prepared, output_dir):
            stream = task_stream(task.name, task.head, group, output_dir, modalities)
            if len(group) < len(prepared):  # several tabular data sets: a stream each, one head
                stream.name = f"{task.name}-{group[0]}"
            stream.loss_weight = trainer.loss_weights.get(task.name, 1.0)
            datasets.update(build_rank_datasets(stream, output_dir, "train", trainer.num_workers,
                                                trainer.batch_size, trainer.seed))
            streams.append(stream)
            stream_tasks.append(task.name)
        heads[task.head] = task.head_config(output_dir)
        for dataset in prepared:
            if not (output_dir / dataset / "validation").is_dir():
                continue
            val = task_stream(task.name, task.head, (dataset,), output_dir, modalities)
            val.name = f"val-{dataset}"
            datasets.update(build_rank_datasets(val, output_dir, "validation", trainer.num_workers,
                                                trainer.batch_size, trainer.seed))
            validation.append({"task": task.name, "kind": task.kind, "dataset": dataset, "head": task.head,
                               "key_prefix": val.name,
                               "tabular_dataset": val.tabular_dataset, "selection_metric": task.selection_metric})
    accumulation = trainer.deepspeed.gradient_accumulation_steps
    schedule = None
    if trainer.task_epochs:
        unset = [t.name for t in specs if t.name not in trainer.task_epochs]
        if unset:
            raise ValueError(f"finetune.task_epochs has no entry for {unset}; give every task of the run its "
                             f"passes, e.g. finetune.task_epochs.{unset[0]}=1")
        epochs = [trainer.task_epochs[t] for t in stream_tasks]
        schedule = interleaved_schedule([steps_for_epochs(e, s.micro_batches_per_epoch, accumulation)
                                         for e, s in zip(epochs, streams, strict=True)])
        total = len(schedule)
        steps_per_epoch = validation_interval(total, epochs)
    else:
        steps_per_epoch = max(math.ceil(max(s.micro_batches_per_epoch for s in streams) / accumulation), 1)
        total = trainer.max_steps or trainer.epochs * steps_per_epoch
    init_from = trainer.init_from or latest_pretrained(settings)
    tabular = [s.tabular_dataset for s in streams if s.tabular_dataset]
    layout = _layout_of_bundle(init_from) if init_from else None
    if layout is None:
        layout = batch_layout(settings, tabular)
    missing = [d for d in tabular if d not in [b.dataset for b in layout.tabular]]
    if missing:
        raise ValueError(
            f"{init_from} was trained with the tabular features of {[b.dataset for b in layout.tabular] or 'none'}, "
            f"not {missing}; finetune from a model pretrained on them (pretrain.tabular_datasets) or set "
            "finetune.init_from to another bundle"
        )
    check_prepared(output_dir, [d for s in streams for d in s.datasets])  # token ids of today's tokenizer
    if init_from:  # trained with the same tokenizer and fitted tabular state as these shards
        check_init_bundle(output_dir, init_from, _bundle_state(init_from))
    _, resume_name, resume_storage = _resolve_resume(resume)  # raises if the run has no checkpoint
    storage = resume_storage or Path(settings.cluster.storage_path).resolve()
    name = resume_name or name or _run_name("finetune", "+".join(tasks))
    spec = LoopSpec(
        kind="finetune", run_dir=str(storage / name), trainer=_trainer_dict(trainer),
        model=settings.model.model_dump(mode="json"), vocab_size=_vocab_size(output_dir / TOKENIZER),
        layout=layout.to_dict(), streams=[s.to_dict() for s in streams], total_steps=total,
        steps_per_epoch=steps_per_epoch, tokenizer_path=str(output_dir / TOKENIZER),
        preprocessing_state={**preprocessing_state(settings, layout), "input_modalities": list(modalities or []),
                             "tasks": served_tasks(settings, specs)},
        init_from=str(Path(init_from).resolve()) if init_from else None, heads=heads, validation=validation,
        schedule=schedule,
    )
    _fit(spec, trainer, datasets, name, storage, trainer.keep_checkpoints)
    export = Path(trainer.output_dir) / "+".join(tasks)
    outcome = _finish(storage / name, started, export)
    latest = Path(trainer.output_dir) / "latest"
    if latest.is_symlink():
        latest.unlink()
    if not latest.exists():
        os.symlink(export.resolve(), latest)  # what `finmm serve` loads by default
    return outcome


__all__ = ["pretrain", "finetune", "TrainingOutcome", "batch_layout", "MODEL_DIR"]
