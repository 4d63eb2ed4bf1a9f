"""The per-worker training loop run by Ray Train: DeepSpeed engine, streams, logging, checkpoints."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from cluster.checkpoints import checkpoint_name, keep_best_model, load_rank_checkpoint, save_rank_checkpoint
from cluster.deepspeed_config import build_deepspeed_config, comm_backend, warmup_then_linear_decay
from cluster.loop_spec import LoopSpec
from cluster.placement_groups import record_placement_group
from cluster.stream_reader import StreamReader, iterate_once
from cluster.streams import StreamSpec
from cluster.tasks import SCORES
from model.param_groups import param_groups, pretrained_names
from model.precision import autocast, resolve_precision


def _skip_shm_op_build() -> None:
    """DeepSpeed JIT-compiles a shared-memory comm op on first initialize (35-55 s with g++); gloo on
    CPU does not need it. Patched through sys.modules: `import deepspeed.comm.torch` resolves to torch."""
    module = sys.modules.get("deepspeed.comm.torch")
    if module is not None and hasattr(module, "build_shm_op"):
        module.build_shm_op = lambda: None


def register_external_parameters(engine) -> None:
    """ZeRO-3 gathers a module's parameters only around that module's own forward. The model reads a few
    parameters of submodules directly (modality-type rows, the MLM decoder tied to the word embeddings, the
    slices of the masked-category classifier); declare them so DeepSpeed gathers them for the parent."""
    from deepspeed.runtime.zero.partition_parameters import register_external_parameter

    root = engine.module
    backbone = getattr(root, "finmm", root)
    register_external_parameter(backbone, backbone.modality_embeddings.weight)
    if hasattr(root, "mlm_head"):
        register_external_parameter(root, backbone.word_embeddings.weight)
    if hasattr(root, "mfm_heads"):
        register_external_parameter(root, root.mfm_heads.categorical.weight)
        register_external_parameter(root, root.mfm_heads.categorical.bias)


def pretrained_source(spec: LoopSpec) -> str | None:
    """Where the run's pretrained weights come from: a finmm bundle (finetune init_from), MiniLM, or nowhere."""
    if spec.kind == "finetune" and spec.init_from:
        return "bundle"
    return "minilm" if spec.model_section.init_from_minilm else None


def build_training_model(spec: LoopSpec):
    """Pretraining: FinMMForPretraining. Finetuning: FinMMForTask from `init_from` (a saved backbone or
    task folder) or from the preset."""
    from model import FinMMForTask, FinMMModel
    from model.bundle import load_model
    from model.factory import build_model
    from model.vocab_warmstart import base_vocab_size, freeze_all_but_new_vocab

    section = spec.model_section
    schema = spec.batch_layout.tabular_schema()
    if spec.kind == "pretrain":
        model = build_model(section, spec.vocab_size, schema, kind="pretraining",
                            image_size=spec.batch_layout.image_size)
        if spec.trainable == "new_vocab":  # only the added (CJK) word rows and the MLM head train
            freeze_all_but_new_vocab(model, base_vocab_size(spec.preprocessing_state))
        return model
    if spec.init_from:
        start = load_model(spec.init_from)
        if start.config.text.vocab_size != spec.vocab_size:
            raise ValueError(
                f"{spec.init_from} has a vocabulary of {start.config.text.vocab_size} tokens but the prepared data "
                f"uses {spec.vocab_size}; pretrain and finetune on the same `finmm prepare` output"
            )
        backbone = start if isinstance(start, FinMMModel) else start.finmm
        return FinMMForTask.from_backbone(backbone, spec.heads)
    section = section.model_copy(update={"heads": spec.heads})
    return build_model(section, spec.vocab_size, schema, kind="task", image_size=spec.batch_layout.image_size)


def _export(spec: LoopSpec):
    """Rank 0's function that turns consolidated weights into the `save_pretrained` bundle."""

    def export(weights: dict, folder: Path) -> None:
        from model import FinMMForTask, FinMMModel
        from model.bundle import save_bundle

        config = build_training_model_config(spec)
        if spec.kind == "pretrain":
            model = FinMMModel(config)
            weights = {k[len("finmm."):]: v for k, v in weights.items() if k.startswith("finmm.")}
        else:
            model = FinMMForTask(config)
        model.load_state_dict(weights)
        save_bundle(folder, model, spec.tokenizer_path, spec.preprocessing_state)

    return export


def build_training_model_config(spec: LoopSpec):
    section = spec.model_section
    if spec.kind == "finetune":
        section = section.model_copy(update={"heads": spec.heads})
    return section.to_finmm_config(spec.vocab_size, spec.batch_layout.tabular_schema(),
                                   image_size=spec.batch_layout.image_size)


def _forward(engine, spec: LoopSpec, stream: StreamSpec, batch: dict, generator: torch.Generator) -> dict:
    labels = batch.pop("labels", None)
    if spec.kind == "pretrain":
        return engine(batch, generator=generator)
    out = engine(batch, labels={stream.head: labels})
    # the logged per-task loss stays unweighted, so runs with different weights compare
    return {f"{stream.name}": out["loss"], "loss": stream.loss_weight * out["loss"]}


def _peak_rss_mb_across_ranks() -> float:
    """The largest peak resident memory of any worker process so far, in MiB (a collective: all ranks call)."""
    import resource

    import torch.distributed as dist

    peak = torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0], dtype=torch.float64)
    if dist.is_initialized():
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    return float(peak.item())


def _real_tokens(batch: dict) -> int:
    text = batch.get("text")
    return int(text["attention_mask"].sum()) if text is not None else 0


def _samples(batch: dict) -> int:
    return int(next(iter(next(iter(batch.values())).values())).shape[0])


def _validate(engine, spec: LoopSpec, layout, rank: int, world: int) -> dict:
    """Score every validation data set with its task's EVAL.md metrics; rank 0 returns them."""
    import numpy as np
    import ray.train
    import torch.distributed as dist

    engine.eval()
    results = {}
    for item in spec.validation:
        shard = ray.train.get_dataset_shard(f"{item['key_prefix']}#{rank}")
        stream = StreamSpec(item["dataset"], [item["dataset"]], [], tabular_dataset=item.get("tabular_dataset"))
        probs, labels = [], []
        with torch.no_grad():
            for batch in iterate_once(shard, stream, layout, spec.trainer_settings.batch_size):
                y = batch.pop("labels")
                out = engine(batch)[item["head"]]
                probs.append(out["probs"].float().cpu().numpy())
                labels.append(y.numpy())
        local = (np.concatenate(probs) if probs else np.zeros((0,)), np.concatenate(labels) if labels else [])
        gathered = [None] * world
        dist.all_gather_object(gathered, local)
        if rank == 0:
            all_probs = np.concatenate([g[0] for g in gathered if len(g[1])])
            all_labels = np.concatenate([g[1] for g in gathered if len(g[1])])
            scores = SCORES[item["kind"]](all_labels, all_probs)
            results.update({f"val/{item['dataset']}/{k}": v for k, v in scores.items()})
    engine.train()
    return results


def selection_value(metrics: dict, spec: LoopSpec) -> float | None:
    """The run's validation score that picks the exported epoch: the mean over its validation data sets of
    each task's `selection_metric` (higher is better), or None when no validation ran."""
    values = [metrics.get(f"val/{item['dataset']}/{item.get('selection_metric', 'accuracy')}")
              for item in spec.validation]
    values = [float(v) for v in values if isinstance(v, (int, float))]
    return sum(values) / len(values) if values else None


def _is_best(state: dict, metrics: dict, spec: LoopSpec, step: int, rank: int) -> bool:
    """Rank 0 judges whether this epoch's validation beats the best so far; every rank learns the answer
    (they must all take part in the checkpoint that keeps it)."""
    import torch.distributed as dist

    verdict = [None]
    if rank == 0:
        value = selection_value(metrics, spec)
        best = state.get("best")
        if value is not None and (best is None or value > best["value"]):
            names = sorted({item.get("selection_metric", "accuracy") for item in spec.validation})
            verdict = [{"step": step, "epoch": round(step / max(spec.steps_per_epoch, 1), 3),
                        "metric": "mean validation " + "/".join(names), "value": value}]
    if dist.is_initialized():
        dist.broadcast_object_list(verdict, src=0)
    if verdict[0] is None:
        return False
    state["best"] = verdict[0]
    return True


def train_loop_per_worker(config: dict) -> None:
    import deepspeed
    import ray.train
    from ray.train import Checkpoint

    spec = LoopSpec.from_dict(config)
    trainer = spec.trainer_settings
    layout = spec.batch_layout
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    run_dir = Path(spec.run_dir)
    (run_dir / "pids").mkdir(parents=True, exist_ok=True)
    (run_dir / "pids" / f"rank{rank}.pid").write_text(str(os.getpid()))
    if rank == 0:
        record_placement_group(run_dir)  # so a stopped tune trial's reservation can be released

    _skip_shm_op_build()
    deepspeed.init_distributed(dist_backend=comm_backend(trainer))
    torch.manual_seed(trainer.seed)
    model = build_training_model(spec)
    precision = resolve_precision(trainer.deepspeed.precision, trainer.use_gpu)
    ds_config = build_deepspeed_config(trainer, spec.total_steps, precision)
    groups = param_groups(model, trainer.learning_rate, trainer.new_module_learning_rate, trainer.weight_decay,
                          pretrained_names(model, pretrained_source(spec)))
    if rank == 0:
        shown = ", ".join(f"{g['name']} {sum(p.numel() for p in g['params']):,} params lr {g['lr']:.2g} "
                          f"wd {g['weight_decay']:g}" for g in groups)
        print(f"[finmm] precision {precision}; parameter groups: {shown}", flush=True)
    schedule = warmup_then_linear_decay(spec.total_steps, trainer.warmup_steps)
    engine, _, _, _ = deepspeed.initialize(
        model=model, model_parameters=groups, config=ds_config,
        lr_scheduler=lambda optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer, schedule),
    )
    if engine.zero_optimization_partition_weights():
        register_external_parameters(engine)
    streams = spec.stream_specs
    state = {"step": 0, "positions": {s.name: [0, 0] for s in streams}, "metrics": {}}
    resumed_from = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = load_rank_checkpoint(engine, Path(folder))
        resumed_from = state["step"]
    readers = [
        StreamReader(ray.train.get_dataset_shard(s.key(rank)), s, layout, trainer.batch_size, trainer.seed,
                     state["positions"].get(s.name))
        for s in streams
    ]
    log_path = run_dir / "metrics.jsonl"
    if rank == 0 and resumed_from is not None:
        with log_path.open("a") as fh:
            fh.write(json.dumps({"event": "resumed", "step": resumed_from, "time": time.time()}) + "\n")
        print(f"[finmm] resumed at step {resumed_from} from the last checkpoint", flush=True)

    accumulation = trainer.deepspeed.gradient_accumulation_steps
    window = {"samples": 0, "tokens": 0, "t0": time.perf_counter(), "losses": {}, "counts": {}}
    engine.train()
    last_step = min(spec.total_steps, trainer.stop_after_steps or spec.total_steps)
    while state["step"] < last_step:
        step = state["step"]
        torch.manual_seed(trainer.seed + 1_000_003 * (step + 1) + rank)  # dropout replays exactly on resume
        generator = torch.Generator().manual_seed(trainer.seed * 7 + 104_729 * (step + 1) + rank)
        active = readers if spec.schedule is None else [readers[spec.schedule[step]]]
        for _ in range(accumulation):
            total = None
            for reader in active:
                batch = reader.next()
                window["samples"] += _samples({k: v for k, v in batch.items() if k != "labels"})
                window["tokens"] += _real_tokens(batch)
                with autocast(precision):
                    out = _forward(engine, spec, reader.spec, batch, generator)
                total = out["loss"] if total is None else total + out["loss"]
                for name, value in out.items():
                    if name != "loss":  # each objective's mean over the streams and micro-batches that had it
                        window["losses"][name] = window["losses"].get(name, 0.0) + float(value.detach())
                        window["counts"][name] = window["counts"].get(name, 0) + 1
            window["losses"]["loss"] = window["losses"].get("loss", 0.0) + float(total.detach())
            window["counts"]["loss"] = window["counts"].get("loss", 0) + 1
            engine.backward(total)
            engine.step()
        state["step"] = step = step + 1
        state["positions"] = {r.spec.name: r.position for r in readers}

        metrics: dict = {"step": step}
        end_of_epoch = spec.kind == "finetune" and (step % spec.steps_per_epoch == 0 or step == spec.total_steps)
        if step % trainer.log_every == 0 or step == last_step or end_of_epoch:
            elapsed = max(time.perf_counter() - window["t0"], 1e-9)
            metrics.update({k: v / max(window["counts"][k], 1) for k, v in window["losses"].items()})
            metrics.update({
                "peak_rss_mb": _peak_rss_mb_across_ranks(),
                "lr": float(engine.get_lr()[0]),
                "samples_per_s": window["samples"] * world / elapsed,
                "tokens_per_s": window["tokens"] * world / elapsed,
                "epoch": round(step / max(spec.steps_per_epoch, 1), 3),
                "total_steps": spec.total_steps,
            })
            window = {"samples": 0, "tokens": 0, "t0": time.perf_counter(), "losses": {}, "counts": {}}
        improved = False
        if end_of_epoch and spec.validation:
            with autocast(precision):
                metrics.update(_validate(engine, spec, layout, rank, world))
            improved = _is_best(state, metrics, spec, step, rank)
        if rank == 0 and len(metrics) > 1:
            with log_path.open("a") as fh:
                fh.write(json.dumps(metrics) + "\n")
            shown = " | ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items() if k != "step"
            )
            print(f"[finmm] step {step}/{spec.total_steps} | {shown}", flush=True)
        state["metrics"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))} or state["metrics"]

        if step % trainer.checkpoint_every == 0 or step == last_step or improved:
            with tempfile.TemporaryDirectory(prefix="finmm-ckpt-") as tmp:
                save_rank_checkpoint(engine, Path(tmp), _export(spec), dict(state))
                if improved and rank == 0:
                    keep_best_model(Path(tmp), run_dir, state["best"])
                ray.train.report(
                    {**state["metrics"], "step": step},
                    checkpoint=Checkpoint.from_directory(tmp),
                    checkpoint_dir_name=checkpoint_name(step),
                )
