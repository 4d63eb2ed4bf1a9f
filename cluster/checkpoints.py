"""Checkpoint layout, saving from every rank, finding the latest one of a run, and checking its integrity.

A checkpoint folder holds:
- `deepspeed/`: every rank's DeepSpeed shards (model, optimizer and scheduler state), for exact resume;
- `model/`: the consolidated fp32 `save_pretrained` folder (safetensors) that finetuning and serving load;
- `train_state.json`: the step, every stream's data position, and the last metrics;
- `checksums.json`: rank 0's manifest, written last by rank 0: sha256 and size of every file rank 0 wrote
  (its `deepspeed/` shards, every file of `model/`, `train_state.json`) and the run's `world_size`;
- `checksums.rank<R>.json` for every other rank R: sha256 and size of the `deepspeed/` shards rank R wrote.
Each rank writes its shards into its own fresh temporary folder, hashes what it wrote there into its own
manifest (no two ranks write the same manifest) and reports the folder; Ray Train merges the folders.

Crash safety: rank 0 writes `model/` under a temporary name and renames it, writes `train_state.json` and
every manifest goes to a temporary name and is renamed (a rename is atomic on one file system), and each
rank writes its manifest after its files. A folder without a `checksums.json`, without the manifest of one
of its `world_size` ranks, or with a listed file missing or of the wrong size, is incomplete (a save or a
copy killed halfway): `latest_checkpoint` skips it, so the previous checkpoint is used. `verify_checkpoint`
re-hashes every file of every rank's manifest and raises `CheckpointCorruptError` naming the file and its
rank; it runs (on every rank) before a checkpoint is resumed from, and before its model folder is copied.
A write that finds the disk full raises `CheckpointDiskFullError` naming the path; the checkpoint being
written stays incomplete, so the previous one stays the latest.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

DEEPSPEED_DIR = "deepspeed"
MODEL_DIR = "model"
STATE_FILE = "train_state.json"
CHECKSUMS_FILE = "checksums.json"
TAG = "ckpt"
PARTIAL_SUFFIX = ".partial"
"""Suffix of a file or folder being written; renamed to its final name once complete."""
_NAME = re.compile(r"^checkpoint_(\d+)$")


class CheckpointCorruptError(RuntimeError):
    """A checkpoint file is missing or does not match the sha256 recorded in checksums.json when it was saved."""


class CheckpointDiskFullError(OSError):
    """No space left on the device while writing a checkpoint file; the message names the path."""


def disk_full_error(path: Path, exc: OSError, what: str = "checkpoint") -> CheckpointDiskFullError:
    return CheckpointDiskFullError(
        errno.ENOSPC,
        f"no space left on device writing {what} {path}; free space or point cluster.storage_path (run "
        f"folders) or TMPDIR (each rank's temporary checkpoint folder) elsewhere. The previous checkpoint is "
        f"untouched and stays the latest. ({type(exc).__name__}: {exc})")


NEARLY_FULL_BYTES = 1 << 20
"""torch.save (DeepSpeed's shards) reports ENOSPC only as `RuntimeError: basic_ios::clear: iostream error`: a
failed write where the file system has less than this left is taken as a full disk."""


def _nearly_full(path: Path) -> bool:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < NEARLY_FULL_BYTES


def is_disk_full(exc: BaseException | None, path: Path | None = None) -> bool:
    """ENOSPC anywhere in the chain (safetensors' writer reports it only in its message), or, given the path
    written, a failed write on a file system with under NEARLY_FULL_BYTES left."""
    if path is not None and isinstance(exc, (OSError, RuntimeError)) and _nearly_full(path):
        return True
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def rank_checksums_file(rank: int) -> str:
    """The manifest of one rank's files: `checksums.json` for rank 0, `checksums.rank<R>.json` for the others."""
    return CHECKSUMS_FILE if rank == 0 else f"checksums.rank{rank}.json"


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


# ------------------------------------------------------------------------------------ atomic writes
def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. a file system that cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `path` through a temporary file, fsync and rename: readers see the old file or the whole new one."""
    path = Path(path)
    tmp = path.with_name(path.name + PARTIAL_SUFFIX)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk: give the space back, the old file stays
        raise
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _checked_files(folder: Path, rank: int = 0) -> list[Path]:
    """The files `rank` wrote into its own (fresh) folder: its `deepspeed/` shards, and for rank 0 also
    every file of `model/` and `train_state.json`."""
    files = sorted(p for p in (folder / DEEPSPEED_DIR).rglob("*") if p.is_file())
    if rank == 0:
        files += sorted(p for p in (folder / MODEL_DIR).rglob("*") if p.is_file())
        files.append(folder / STATE_FILE)
    return files


def write_checksums(folder: Path, rank: int = 0, world_size: int = 1) -> dict:
    """Record sha256 and size of the files `rank` wrote into `folder` in its manifest (atomically, after them):
    `checksums.json` for rank 0 (with the run's `world_size`), `checksums.rank<R>.json` for rank R."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
             for p in _checked_files(folder, rank)}
    manifest = {"algorithm": "sha256", "rank": rank, "files": files}
    if rank == 0:
        manifest["world_size"] = int(world_size)
    path = folder / rank_checksums_file(rank)
    try:
        atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True))
    except OSError as exc:
        if is_disk_full(exc, path):
            raise disk_full_error(path, exc) from exc
        raise
    return manifest


def _read_manifest(path: Path) -> dict | None:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict) else None


def _read_checksums(folder: Path) -> dict | None:
    return _read_manifest(folder / CHECKSUMS_FILE)


def _world_size(manifest: dict) -> int:
    world = manifest.get("world_size", 1)  # checkpoints saved before every rank was hashed: rank 0 only
    return world if isinstance(world, int) and world >= 1 else 1


def _rank_manifests(folder: Path) -> list[tuple[int, str, dict | None]]:
    """(rank, manifest file name, manifest or None when unreadable) for every rank of the checkpoint; [] when
    rank 0's `checksums.json` is unreadable."""
    first = _read_checksums(folder)
    if first is None:
        return []
    out = [(0, CHECKSUMS_FILE, first)]
    for rank in range(1, _world_size(first)):
        name = rank_checksums_file(rank)
        out.append((rank, name, _read_manifest(folder / name)))
    return out


def is_complete(folder: Path) -> bool:
    """Cheap completeness check (no hashing): checksums.json and every other rank's manifest are readable and
    every file they list is there with the recorded size. False for a save or a copy that stopped halfway."""
    folder = Path(folder)
    manifests = _rank_manifests(folder)
    if not manifests or STATE_FILE not in manifests[0][2]["files"]:
        return False
    for _, _, manifest in manifests:
        if manifest is None:
            return False
        for rel, entry in manifest["files"].items():
            path = folder / rel
            if not path.is_file() or path.stat().st_size != entry.get("bytes"):
                return False
    return True


def verify_checkpoint(folder: Path) -> None:
    """Re-hash every file listed in every rank's manifest; raise CheckpointCorruptError naming the first bad
    one and the rank that wrote it."""
    folder = Path(folder)
    manifests = _rank_manifests(folder)
    if not manifests:
        raise CheckpointCorruptError(
            f"checkpoint {folder} has no readable {CHECKSUMS_FILE}: the save did not complete, or the folder was "
            "not written by finmm. Resume from an earlier checkpoint_* folder of the run.")
    for rank, name, manifest in manifests:
        if manifest is None:
            raise CheckpointCorruptError(
                f"checkpoint {folder} has no readable {name} (rank {rank} of {len(manifests)}): that rank's save "
                "did not complete or its files were not copied. Resume from an earlier checkpoint_* folder of "
                "the run.")
        for rel, entry in sorted(manifest["files"].items()):
            path = folder / rel
            if not path.is_file():
                raise CheckpointCorruptError(
                    f"checkpoint {folder}: {rel} (rank {rank}) is missing (listed in {name})")
            got = sha256_file(path)
            if got != entry.get("sha256"):
                raise CheckpointCorruptError(
                    f"checkpoint {folder}: {rel} (rank {rank}) is corrupted (sha256 {got[:12]}..., saved as "
                    f"{str(entry.get('sha256'))[:12]}... in {name}). Resume from an earlier checkpoint_* "
                    "folder of the run.")


# ------------------------------------------------------------------------------------ save and load
def write_model_and_state(folder: Path, weights: dict[str, torch.Tensor],
                          export_model: Callable[[dict, Path], None], train_state: dict,
                          world_size: int = 1) -> None:
    """Rank 0's part: `model/` (exported under a temporary name, then renamed), `train_state.json`, and last
    `checksums.json` (rank 0's files, its `deepspeed/` shards included). Killed at any point, the folder is
    either complete or recognisably incomplete; a full disk raises CheckpointDiskFullError naming the path."""
    folder = Path(folder)
    partial = folder / (MODEL_DIR + PARTIAL_SUFFIX)
    try:
        shutil.rmtree(partial, ignore_errors=True)
        export_model(weights, partial)
    except Exception as exc:
        if is_disk_full(exc, partial):
            shutil.rmtree(partial, ignore_errors=True)  # give the space back; the folder stays incomplete
            raise disk_full_error(partial, exc) from exc
        raise
    shutil.rmtree(folder / MODEL_DIR, ignore_errors=True)
    os.replace(partial, folder / MODEL_DIR)
    try:
        atomic_write_text(folder / STATE_FILE, json.dumps(train_state, indent=2))
    except OSError as exc:
        if is_disk_full(exc, folder):
            raise disk_full_error(folder / STATE_FILE, exc) from exc
        raise
    write_checksums(folder, rank=0, world_size=world_size)


def save_rank_checkpoint(engine, folder: Path, export_model, train_state: dict) -> None:
    """Write this rank's part of a checkpoint into `folder` (a fresh local temp dir of this rank's own), then
    this rank's manifest of what it wrote: every rank hashes its own DeepSpeed shards."""
    folder = Path(folder)
    try:
        engine.save_checkpoint(str(folder / DEEPSPEED_DIR), tag=TAG, client_state={"step": train_state["step"]})
    except Exception as exc:
        if is_disk_full(exc, folder):
            shutil.rmtree(folder / DEEPSPEED_DIR, ignore_errors=True)  # give the space back
            raise disk_full_error(folder / DEEPSPEED_DIR, exc, "DeepSpeed shards into") from exc
        raise
    weights = consolidated_state_dict(engine)
    rank, world = int(engine.global_rank), int(getattr(engine, "world_size", 1) or 1)
    if weights is not None:
        write_model_and_state(folder, weights, export_model, train_state, world_size=world)
    elif rank != 0:
        write_checksums(folder, rank=rank, world_size=world)


def load_rank_checkpoint(engine, folder: Path) -> dict:
    """Verify the checkpoint's checksums, restore engine state (weights, optimizer, scheduler) and return the
    saved train state."""
    verify_checkpoint(folder)
    load_path, _ = engine.load_checkpoint(str(folder / DEEPSPEED_DIR), tag=TAG)
    if load_path is None:
        raise RuntimeError(f"DeepSpeed found no checkpoint under {folder / DEEPSPEED_DIR}")
    return json.loads((folder / STATE_FILE).read_text())


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The highest-step complete checkpoint folder of a run, or None. Complete: `model/`, `train_state.json`
    and a `checksums.json` whose files are all present at their recorded sizes (see `is_complete`)."""
    run_dir = Path(run_dir)
    found = []
    for path in run_dir.glob("checkpoint_*"):
        match = _NAME.match(path.name)
        if match and (path / STATE_FILE).exists() and (path / MODEL_DIR).exists() and is_complete(path):
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


BEST_MODEL_DIR = "best_model"
"""In a run folder: the exported model of the best validation epoch so far (finetuning)."""
SELECTION_FILE = "selection.json"
"""In an exported model folder: which epoch it is and the validation score that chose it."""


def keep_best_model(checkpoint: Path, run_dir: Path, best: dict) -> Path:
    """Copy a just-written checkpoint's `model/` to `run_dir/best_model` (under a temporary name, then renamed),
    with `selection.json` saying which step and epoch it is and its validation score."""
    destination = Path(run_dir) / BEST_MODEL_DIR
    tmp = destination.with_name(destination.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(Path(checkpoint) / MODEL_DIR, tmp)
    (tmp / SELECTION_FILE).write_text(json.dumps({"selected_by": "validation", **best}, indent=2))
    shutil.rmtree(destination, ignore_errors=True)
    tmp.rename(destination)
    return destination


def copy_model_folder(checkpoint: Path, destination: Path) -> Path:
    """Verify the checkpoint, then copy its consolidated `save_pretrained` folder to `destination` (replacing
    it; the copy is made under a temporary name and renamed)."""
    verify_checkpoint(checkpoint)
    source = Path(checkpoint) / MODEL_DIR
    tmp = destination.with_name(destination.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    shutil.rmtree(destination, ignore_errors=True)
    tmp.rename(destination)
    return destination
