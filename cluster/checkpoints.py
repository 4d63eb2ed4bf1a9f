"""Checkpoint layout, saving from every rank, and finding the latest one of a run.

A checkpoint folder holds:
- `deepspeed/`: every rank's DeepSpeed shards (model, optimizer and scheduler state), for exact resume;
- `model/`: the consolidated fp32 `save_pretrained` folder (safetensors) that finetuning and serving load;
- `train_state.json`: the step, every stream's data position, and the last metrics.
Each rank writes its shards into a temporary folder and reports it; Ray Train merges the folders.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch

DEEPSPEED_DIR = "deepspeed"
MODEL_DIR = "model"
STATE_FILE = "train_state.json"
TAG = "ckpt"
_NAME = re.compile(r"^checkpoint_(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"checkpoint_{step:07d}"


def consolidated_state_dict(engine) -> dict[str, torch.Tensor] | None:
    """Full fp32 weights on rank 0 (None elsewhere). ZeRO-3 gathers its partitions: every rank must call."""
    if engine.zero_optimization_partition_weights():
        state = engine._zero3_consolidated_16bit_state_dict()
    else:
        state = engine.module.state_dict() if engine.global_rank == 0 else None
    if engine.global_rank != 0 or state is None:
        return None
    return {k: v.detach().to(torch.float32).cpu().clone() for k, v in state.items()}


def save_rank_checkpoint(engine, folder: Path, export_model, train_state: dict) -> None:
    """Write this rank's part of a checkpoint into `folder` (a fresh local temp dir)."""
    engine.save_checkpoint(str(folder / DEEPSPEED_DIR), tag=TAG, client_state={"step": train_state["step"]})
    weights = consolidated_state_dict(engine)
    if weights is not None:
        export_model(weights, folder / MODEL_DIR)
        (folder / STATE_FILE).write_text(json.dumps(train_state, indent=2))


def load_rank_checkpoint(engine, folder: Path) -> dict:
    """Restore engine state (weights, optimizer, scheduler) and return the saved train state."""
    load_path, _ = engine.load_checkpoint(str(folder / DEEPSPEED_DIR), tag=TAG)
    if load_path is None:
        raise RuntimeError(f"DeepSpeed found no checkpoint under {folder / DEEPSPEED_DIR}")
    return json.loads((folder / STATE_FILE).read_text())


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The highest-step complete checkpoint folder of a run (one with a train_state.json), or None."""
    run_dir = Path(run_dir)
    found = []
    for path in run_dir.glob("checkpoint_*"):
        match = _NAME.match(path.name)
        if match and (path / STATE_FILE).exists() and (path / MODEL_DIR).exists():
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def copy_model_folder(checkpoint: Path, destination: Path) -> Path:
    """Copy a checkpoint's consolidated `save_pretrained` folder to `destination` (replacing it)."""
    source = Path(checkpoint) / MODEL_DIR
    tmp = destination.with_name(destination.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    shutil.rmtree(destination, ignore_errors=True)
    tmp.rename(destination)
    return destination
