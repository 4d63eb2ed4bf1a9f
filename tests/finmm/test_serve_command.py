"""Which model a plain `finmm serve` loads: an explicit choice, else the newest finetuned bundle under
finetune.output_dir or artifacts/*/finetune (the demo's). Real bundles from the model code; Serve is not started."""

import io
import os
from pathlib import Path

import pytest
from rich.console import Console

from finmm.config import FinMMSettings
from finmm.serve_command import _model_dir, choose_model_dir, finetuned_bundles
from model.bundle import save_bundle
from model.dummy import tiny_config
from model.task import FinMMForTask
from serve.preprocess import MODEL_DIR_ENV


def _bundle(folder: Path, heads: dict, mtime: float) -> Path:
    save_bundle(folder, FinMMForTask(tiny_config(heads=heads)).eval())
    os.utime(folder / "model.safetensors", (mtime, mtime))  # "saved at": deterministic order, no sleeping
    return folder


@pytest.fixture
def two_bundles(tmp_path, monkeypatch):
    """`finmm finetune --task sentiment` (older) and the demo's four-task bundle with its `latest` link (newer),
    laid out as the commands write them, relative to the working directory."""
    monkeypatch.chdir(tmp_path)
    older = _bundle(tmp_path / "artifacts/finetune/sentiment", {"sentiment": {}}, 1_700_000_000)
    newer = _bundle(tmp_path / "artifacts/demo/finetune/credit_risk+sentiment",
                    {"credit_risk": {}, "sentiment": {}}, 1_700_000_600)
    (tmp_path / "artifacts/demo/finetune/latest").symlink_to(newer)
    return older, newer


def test_the_newest_bundle_is_chosen_and_the_reason_says_so(two_bundles):
    older, newer = two_bundles
    choice = choose_model_dir(FinMMSettings(), environ={})
    assert choice.path == newer.resolve()
    assert "the newest of 2 finetuned bundle(s)" in choice.reason  # `latest` and its target counted once
    assert "heads credit_risk, sentiment" in choice.reason
    assert "artifacts/finetune" in choice.reason and "artifacts/demo/finetune" in choice.reason

    t = 1_700_001_000  # the single-task bundle retrained later: now it is the newest
    os.utime(older / "model.safetensors", (t, t))
    assert choose_model_dir(FinMMSettings(), environ={}).path == older.resolve()


def test_an_explicit_choice_wins_over_the_newest(two_bundles, tmp_path):
    older, newer = two_bundles
    settings = FinMMSettings()
    choice = choose_model_dir(settings, model_dir=older, environ={})
    assert choice.path == older.resolve() and "--model-dir" in choice.reason
    configured = settings.model_copy(update={"serve": settings.serve.model_copy(update={"model_dir": older})})
    assert choose_model_dir(configured, environ={}).path == older.resolve()
    from_env = choose_model_dir(settings, environ={MODEL_DIR_ENV: str(older)})
    assert from_env.path == older.resolve() and MODEL_DIR_ENV in from_env.reason
    # an explicit folder without weights is an error, not a reason to serve something else
    with pytest.raises(FileNotFoundError, match="no model to serve"):
        choose_model_dir(settings, model_dir=tmp_path / "nothing", environ={})


def test_half_copied_and_weightless_folders_are_not_bundles(two_bundles, tmp_path):
    older, newer = two_bundles
    partial = _bundle(tmp_path / "artifacts/finetune/credit_risk.tmp", {"credit_risk": {}}, 1_800_000_000)
    (tmp_path / "artifacts/finetune/empty").mkdir()
    found = finetuned_bundles([Path("artifacts/finetune"), Path("artifacts/demo/finetune")])
    assert found == [newer.resolve(), older.resolve()] and partial.resolve() not in found


def test_no_bundle_anywhere_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="finmm finetune") as info:
        choose_model_dir(FinMMSettings(), environ={})
    assert "model.safetensors" in str(info.value)


def test_serve_prints_which_model_and_why(two_bundles, monkeypatch):
    _, newer = two_bundles
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    buf = io.StringIO()
    assert _model_dir(FinMMSettings(), None, Console(file=buf, width=400)) == newer.resolve()
    assert f"model: {newer.resolve()}\n  the newest of 2 finetuned bundle(s)" in buf.getvalue()
