"""Checkpoint writes are crash-safe and checked (cluster/checkpoints.py).

- a save killed halfway (a real subprocess SIGKILLed while it writes the model) or failing before its
  checksums (an injected OSError) leaves the previous checkpoint as the latest, loadable and verified;
- a copy to storage that stopped halfway (a truncated file) is not taken as a checkpoint;
- a corrupted file is found by its sha256 with an error naming it, before resuming or exporting.
rank 0's file writing (`write_model_and_state`) is exercised directly with a real safetensors exporter; the
DeepSpeed part of a save is covered by the real runs in tests/cluster/test_training.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from reliability_helpers import REPO, record
from safetensors.torch import load_file, save_file

from cluster import checkpoints
from cluster.checkpoints import (
    CHECKSUMS_FILE,
    MODEL_DIR,
    STATE_FILE,
    CheckpointCorruptError,
    checkpoint_name,
    copy_model_folder,
    latest_checkpoint,
    load_rank_checkpoint,
    verify_checkpoint,
    write_model_and_state,
)

pytestmark = pytest.mark.timeout(300)


def export(weights: dict, folder: Path) -> None:
    """A save_pretrained-like folder: safetensors weights and a config."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "finmm", "hidden": 16}))


def weights(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"encoder.weight": torch.randn(64, 64, generator=g), "head.bias": torch.randn(3, generator=g)}


def save(run: Path, step: int) -> Path:
    folder = run / checkpoint_name(step)
    folder.mkdir(parents=True)
    write_model_and_state(folder, weights(step), export, {"step": step, "positions": {}, "metrics": {}})
    return folder


def assert_loadable(folder: Path, step: int) -> None:
    verify_checkpoint(folder)
    assert json.loads((folder / STATE_FILE).read_text())["step"] == step
    loaded = load_file(str(folder / MODEL_DIR / "model.safetensors"))
    for k, v in weights(step).items():
        torch.testing.assert_close(loaded[k], v)


KILLED_SAVE = r"""
import sys, time
from pathlib import Path
from safetensors.torch import save_file
import torch
from cluster.checkpoints import write_model_and_state

folder, marker = Path(sys.argv[1]), Path(sys.argv[2])

def slow_export(weights, out):
    out.mkdir(parents=True)
    save_file(weights, str(out / "model.safetensors"))
    with open(out / "model.safetensors", "r+b") as fh:   # the file is being rewritten when the process dies
        fh.truncate(100)
    marker.write_text("halfway")
    time.sleep(120)

folder.mkdir(parents=True)
write_model_and_state(folder, {"w": torch.ones(256, 256)}, slow_export, {"step": 4})
"""


def test_save_killed_halfway_leaves_the_previous_checkpoint(tmp_path):
    run = tmp_path / "run"
    good = save(run, 2)
    marker = tmp_path / "halfway"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(run / checkpoint_name(4)), str(marker)],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the saving process ended before it was killed"
            assert time.monotonic() < deadline, "the saving process never reached the middle of its save"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    partial = run / checkpoint_name(4)
    assert partial.exists() and not (partial / MODEL_DIR).exists() and not (partial / CHECKSUMS_FILE).exists()
    assert latest_checkpoint(run) == good
    assert_loadable(good, 2)
    with pytest.raises(CheckpointCorruptError, match="checksums.json"):
        verify_checkpoint(partial)
    record("checkpoint_kill", killed="SIGKILL while writing model/", latest=good.name)


def test_save_failing_before_its_checksums_is_not_taken(tmp_path, monkeypatch):
    run = tmp_path / "run"
    good = save(run, 2)

    def disk_full(folder, **_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints, "write_checksums", disk_full)
    with pytest.raises(OSError, match="No space"):
        save(run, 4)
    monkeypatch.undo()
    assert (run / checkpoint_name(4) / MODEL_DIR).exists() and (run / checkpoint_name(4) / STATE_FILE).exists()
    assert latest_checkpoint(run) == good
    assert_loadable(good, 2)


def test_copy_stopped_halfway_is_not_taken(tmp_path):
    run = tmp_path / "run"
    good = save(run, 2)
    newer = save(run, 4)
    assert latest_checkpoint(run) == newer
    copied = run / checkpoint_name(6)
    shutil.copytree(newer, copied)
    with open(copied / MODEL_DIR / "model.safetensors", "r+b") as fh:  # as a copy killed mid-file leaves it
        fh.truncate(1000)
    assert latest_checkpoint(run) == newer
    (copied / MODEL_DIR / "config.json").unlink()
    (newer / MODEL_DIR / "config.json").unlink()  # a file listed in checksums.json is gone
    assert latest_checkpoint(run) == good


@pytest.mark.parametrize("victim", ["model/model.safetensors", "model/config.json", "train_state.json"])
def test_corrupted_file_is_detected_by_hash(tmp_path, victim):
    run = tmp_path / "run"
    folder = save(run, 3)
    path = folder / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit, same size: only the hash can tell
    path.write_bytes(bytes(data))
    assert latest_checkpoint(run) == folder  # complete, so found ...
    with pytest.raises(CheckpointCorruptError, match=victim):  # ... but refused before any use
        verify_checkpoint(folder)
    destination = tmp_path / "export"
    destination.mkdir()
    (destination / "keep.txt").write_text("previous export")
    with pytest.raises(CheckpointCorruptError, match=victim):
        copy_model_folder(folder, destination)
    assert (destination / "keep.txt").read_text() == "previous export"
    with pytest.raises(CheckpointCorruptError, match=victim):
        load_rank_checkpoint(None, folder)  # verified before DeepSpeed is asked to load anything


def test_good_checkpoint_exports(tmp_path):
    folder = save(tmp_path / "run", 5)
    out = copy_model_folder(folder, tmp_path / "export")
    assert load_file(str(out / "model.safetensors")).keys() == weights(5).keys()
    manifest = json.loads((folder / CHECKSUMS_FILE).read_text())
    assert set(manifest["files"]) == {"model/model.safetensors", "model/config.json", "train_state.json"}


# ------------------------------------------------------------------ every rank's files (issue 18)
class FakeEngine:
    """Stands in for a DeepSpeed engine of one rank: `save_checkpoint` writes that rank's shards with
    DeepSpeed's file names (rank 0 also `latest` and the model states), `load_checkpoint` records the call."""

    def __init__(self, rank: int, world: int, step: int):
        self.global_rank, self.world_size, self.step = rank, world, step
        self.module = torch.nn.Linear(4, 3)
        self.loaded = []

    def zero_optimization_partition_weights(self) -> bool:
        return False

    def save_checkpoint(self, save_dir, tag, client_state):
        out = Path(save_dir) / tag
        out.mkdir(parents=True, exist_ok=True)
        g = torch.Generator().manual_seed(100 * self.step + self.global_rank)
        torch.save({"exp_avg": torch.randn(128, generator=g)},
                   out / f"zero_pp_rank_{self.global_rank}_mp_rank_00_optim_states.pt")
        if self.global_rank == 0:
            torch.save({"module": self.module.state_dict(), **client_state}, out / "mp_rank_00_model_states.pt")
            (Path(save_dir) / "latest").write_text(tag)

    def load_checkpoint(self, load_dir, tag):
        self.loaded.append(load_dir)
        return load_dir, {}


def save_all_ranks(run: Path, step: int, world: int, tmp_root: Path) -> Path:
    """Each rank saves into its own fresh folder, then the folders are merged as Ray Train does on report."""
    folder = run / checkpoint_name(step)
    for rank in range(world):
        own = tmp_root / f"step{step}-rank{rank}"
        own.mkdir(parents=True)
        checkpoints.save_rank_checkpoint(FakeEngine(rank, world, step), own, export,
                                         {"step": step, "positions": {}, "metrics": {}})
        shutil.copytree(own, folder, dirs_exist_ok=True)
    return folder


RANK1_SHARD = "deepspeed/ckpt/zero_pp_rank_1_mp_rank_00_optim_states.pt"


def test_every_rank_hashes_its_own_files(tmp_path):
    folder = save_all_ranks(tmp_path / "run", 2, world=3, tmp_root=tmp_path / "tmp")
    first = json.loads((folder / CHECKSUMS_FILE).read_text())
    assert first["world_size"] == 3 and first["rank"] == 0
    assert set(first["files"]) == {"deepspeed/latest", "deepspeed/ckpt/mp_rank_00_model_states.pt",
                                   "deepspeed/ckpt/zero_pp_rank_0_mp_rank_00_optim_states.pt",
                                   "model/model.safetensors", "model/config.json", "train_state.json"}
    for rank in (1, 2):
        own = json.loads((folder / checkpoints.rank_checksums_file(rank)).read_text())
        assert set(own["files"]) == {f"deepspeed/ckpt/zero_pp_rank_{rank}_mp_rank_00_optim_states.pt"}
    assert latest_checkpoint(folder.parent) == folder
    verify_checkpoint(folder)
    engine = FakeEngine(1, 3, 2)
    assert load_rank_checkpoint(engine, folder)["step"] == 2 and engine.loaded


def test_corrupted_shard_of_rank_1_refuses_resume_and_export(tmp_path):
    run = tmp_path / "run"
    save_all_ranks(run, 2, world=2, tmp_root=tmp_path / "tmp")
    folder = save_all_ranks(run, 4, world=2, tmp_root=tmp_path / "tmp")
    path = folder / RANK1_SHARD
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit, same size
    path.write_bytes(bytes(data))
    assert latest_checkpoint(run) == folder  # complete, so found ...
    for rank in (0, 1):  # ... and every rank refuses it before DeepSpeed loads anything
        engine = FakeEngine(rank, 2, 4)
        with pytest.raises(CheckpointCorruptError, match=rf"{RANK1_SHARD} \(rank 1\) is corrupted") as err:
            load_rank_checkpoint(engine, folder)
        assert not engine.loaded
    destination = tmp_path / "export"
    with pytest.raises(CheckpointCorruptError, match=RANK1_SHARD):
        copy_model_folder(folder, destination)
    assert not destination.exists()
    record("checkpoint_rank1_corrupt", error=str(err.value))


def test_missing_rank_manifest_or_shard_is_incomplete(tmp_path):
    run = tmp_path / "run"
    good = save_all_ranks(run, 2, world=2, tmp_root=tmp_path / "tmp")
    newer = save_all_ranks(run, 4, world=2, tmp_root=tmp_path / "tmp")
    (newer / RANK1_SHARD).unlink()  # rank 1's upload never arrived
    assert latest_checkpoint(run) == good
    with pytest.raises(CheckpointCorruptError, match=rf"{RANK1_SHARD} \(rank 1\) is missing"):
        verify_checkpoint(newer)
    (newer / checkpoints.rank_checksums_file(1)).unlink()
    with pytest.raises(CheckpointCorruptError, match=r"checksums.rank1.json \(rank 1 of 2\)"):
        verify_checkpoint(newer)
    assert latest_checkpoint(run) == good
    verify_checkpoint(good)
