"""Disk full (issue 18): `finmm prepare` and a checkpoint save onto a small file system that fills up.

Each write fails with an error naming the path and saying how to fix it, and the previous prepared data or
checkpoint stay intact and loadable. The file system is a real tmpfs of a few MiB (mounted when the tests run
as root; skipped otherwise); the same paths are also driven with an injected OSError(ENOSPC) at the write
call, which runs everywhere.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from reliability_helpers import record
from safetensors.torch import load_file
from test_checkpoints import FakeEngine, assert_loadable, export, save, save_all_ranks

from actors import pipeline
from actors.manifest import read_manifest
from actors.settings import DataSection
from cluster import checkpoints
from cluster.checkpoints import (
    MODEL_DIR,
    CheckpointDiskFullError,
    checkpoint_name,
    latest_checkpoint,
)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def small_fs(tmp_path):
    """A real 4 MiB tmpfs (root only), unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the injected-ENOSPC tests cover it")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path, leave: int) -> Path:
    """Fill the file system until only about `leave` bytes are free."""
    st = os.statvfs(mount)
    free = st.f_bavail * st.f_frsize
    filler = mount / f"filler-{uuid.uuid4().hex[:6]}"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(free - leave, 0))
    return filler


def enospc(*_, **__):
    raise OSError(errno.ENOSPC, "No space left on device")


# ------------------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("leave_kib", [4, 24], ids=["full-at-the-deepspeed-shards", "full-later-in-the-save"])
def test_checkpoint_onto_a_full_tmpfs_fails_clearly_and_keeps_the_previous(small_fs, tmp_path, leave_kib):
    run = small_fs / "run"
    good = save_all_ranks(run, 2, world=2, tmp_root=small_fs / "tmp")
    fill(small_fs, leave=leave_kib * 1024)
    with pytest.raises(CheckpointDiskFullError, match="no space left on device writing") as err:
        save_all_ranks(run, 4, world=2, tmp_root=small_fs / "tmp")
    message = str(err.value)
    assert str(small_fs) in message and "free space or point cluster.storage_path" in message
    assert not (small_fs / "tmp" / "step4-rank0" / (MODEL_DIR + ".partial")).exists()  # space given back
    assert latest_checkpoint(run) == good
    checkpoints.verify_checkpoint(good)
    assert set(load_file(str(good / MODEL_DIR / "model.safetensors"))) == {"weight", "bias"}
    assert checkpoints.load_rank_checkpoint(FakeEngine(1, 2, 2), good)["step"] == 2
    print(message)
    record("disk_full_checkpoint", fs="tmpfs 4 MiB", free_kib=leave_kib, error=message)


def test_checkpoint_copied_onto_a_full_tmpfs_is_not_taken(small_fs, tmp_path):
    """The storage copy Ray Train makes on report stops with ENOSPC: the half-copied folder is skipped."""
    run = small_fs / "run"
    good = save(run, 2)
    newer = save_all_ranks(tmp_path / "local", 4, world=2, tmp_root=tmp_path / "tmp")
    fill(small_fs, leave=8 * 1024)
    with pytest.raises(OSError) as err:
        shutil.copytree(newer, run / checkpoint_name(4))
    assert checkpoints.is_disk_full(err.value)
    assert latest_checkpoint(run) == good
    assert_loadable(good, 2)


@pytest.mark.parametrize("where", ["export", "train_state", "checksums"])
def test_checkpoint_injected_enospc_fails_clearly_and_keeps_the_previous(tmp_path, monkeypatch, where):
    run = tmp_path / "run"
    good = save(run, 2)
    if where == "export":
        def failing_export(weights, folder):
            folder.mkdir(parents=True)
            (folder / "config.json").write_text("{}")
            enospc()
        target = failing_export
    else:
        real = checkpoints.atomic_write_text
        name = "train_state.json" if where == "train_state" else "checksums.json"

        def failing_write(path, text):
            if Path(path).name == name:
                enospc()
            real(path, text)
        monkeypatch.setattr(checkpoints, "atomic_write_text", failing_write)
        target = export
    folder = run / checkpoint_name(4)
    folder.mkdir()
    with pytest.raises(CheckpointDiskFullError, match=r"no space left on device writing .*free space") as err:
        checkpoints.write_model_and_state(folder, {}, target, {"step": 4})
    assert str(folder) in str(err.value)
    monkeypatch.undo()
    assert not (folder / (MODEL_DIR + ".partial")).exists()
    assert latest_checkpoint(run) == good
    assert_loadable(good, 2)


# ------------------------------------------------------------------------------------ prepare
def _prepared_rows(out: Path, name: str) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in (out / name).glob("*/*.parquet"))


def test_prepare_onto_a_full_tmpfs_fails_clearly_and_keeps_the_previous(ray_cluster, small_fs):
    settings = DataSection(max_rows_per_split=20, output_dir=small_fs / "data")
    pipeline.prepare(settings, ["german_credit"])
    before, rows = read_manifest(settings.output_dir, "german_credit"), _prepared_rows(settings.output_dir,
                                                                                        "german_credit")
    fill(small_fs, leave=4 * 1024)
    bigger = DataSection(max_rows_per_split=300, output_dir=small_fs / "data")
    with pytest.raises(pipeline.PrepareDiskFullError, match="no space left on device writing") as err:
        pipeline.prepare(bigger, ["german_credit"])
    message = str(err.value)
    assert str(small_fs / "data") in message and "free space or point data.output_dir elsewhere" in message
    assert not (small_fs / "data" / ".german_credit.partial").exists()  # staging removed, space given back
    assert read_manifest(settings.output_dir, "german_credit") == before
    assert _prepared_rows(settings.output_dir, "german_credit") == rows
    split, count = next(iter(before["splits"].items()))
    assert pipeline.read_prepared(settings.output_dir, "german_credit", split).count() == count
    record("disk_full_prepare", fs="tmpfs 4 MiB", error=message)


def test_prepare_injected_enospc_fails_clearly_and_keeps_the_previous(ray_cluster, tmp_path, monkeypatch):
    settings = DataSection(max_rows_per_split=10, output_dir=tmp_path)
    pipeline.prepare(settings, ["german_credit"])
    before = read_manifest(tmp_path, "german_credit")
    monkeypatch.setattr(pipeline.pq, "write_table", enospc)  # the rejected-rows write, inside the staging folder
    with pytest.raises(pipeline.PrepareDiskFullError, match=r"writing .*rejected.parquet; free space or point "
                                                            r"data.output_dir elsewhere"):
        pipeline.prepare(DataSection(max_rows_per_split=30, output_dir=tmp_path), ["german_credit"])
    monkeypatch.undo()
    assert not (tmp_path / ".german_credit.partial").exists()
    assert read_manifest(tmp_path, "german_credit") == before
    split, count = next(iter(before["splits"].items()))
    assert pipeline.read_prepared(tmp_path, "german_credit", split).count() == count


def test_prepared_folder_is_swapped_in_atomically(tmp_path):
    final, staging = tmp_path / "ds", tmp_path / ".ds.partial"
    final.mkdir()
    (final / "old").write_text("old")
    staging.mkdir()
    (staging / "new").write_text("new")
    pipeline._replace_folder(staging, final)
    assert (final / "new").read_text() == "new" and not (final / "old").exists() and not staging.exists()


def test_tokenizer_record_onto_a_full_tmpfs_is_a_prepare_disk_full_error(small_fs):
    """The tokenizer's version record is the last file a tokenizer build writes: a full disk there is the same
    clear error as elsewhere (it was a bare OSError), and no `.partial` file is left behind."""
    from actors.versions import TOKENIZER_VERSION_FILE

    (small_fs / pipeline.TOKENIZER).write_text('{"model": {"vocab": {"[UNK]": 0}}}')
    fill(small_fs, leave=0)
    with pytest.raises(pipeline.PrepareDiskFullError) as caught:
        pipeline._record_tokenizer(small_fs, pipeline.BUILT, ["financial_phrasebank"], info={"train_texts": 1})
    message = str(caught.value)
    assert str(small_fs / TOKENIZER_VERSION_FILE) in message and "free space" in message
    assert not (small_fs / (TOKENIZER_VERSION_FILE + ".partial")).exists()
    record("disk_full_tokenizer_record", message=message[:200])
