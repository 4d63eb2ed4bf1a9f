"""Real Ray Train + DeepSpeed runs with 2 CPU workers (gloo, torch AdamW) on a slice of the real data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cluster.checkpoints import DEEPSPEED_DIR, MODEL_DIR, latest_checkpoint
from cluster.trainer import finetune, pretrain
from model import FinMMForTask, FinMMModel

pytestmark = pytest.mark.timeout(600)


def _safe_metrics(run_dir: Path) -> list[dict]:
    try:
        return read_metrics(run_dir)
    except (FileNotFoundError, json.JSONDecodeError):
        return []


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("stage", [2, 3])  # stage 1 differs from 2 only inside DeepSpeed (gradients unpartitioned)
def test_finetune_runs_at_each_zero_stage(tiny_settings, stage):
    settings = tiny_settings(f"finetune.deepspeed.zero_stage={stage}", "finetune.max_steps=4",
                             "finetune.checkpoint_every=2")
    outcome = finetune(settings, ["sentiment"], name=f"zero{stage}")
    checkpoint = latest_checkpoint(outcome.run_dir)
    assert checkpoint.name == "checkpoint_0000004"
    shards = list((checkpoint / DEEPSPEED_DIR).rglob("*optim_states.pt"))
    assert len(shards) == 2, "each of the 2 ranks saves its optimizer partition"
    model = FinMMForTask.from_pretrained(outcome.model_dir, use_safetensors=True)
    weights = load_file(outcome.model_dir / "model.safetensors")
    assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())
    assert model.config.heads == {"sentiment": {}}
    steps = [m for m in read_metrics(outcome.run_dir) if "loss" in m]
    assert steps and all(k in steps[-1] for k in ("lr", "samples_per_s", "tokens_per_s", "sentiment"))
    assert all(torch.isfinite(torch.tensor(m["loss"])) for m in steps)
    # validation metrics of EVAL.md after the epoch's end (the last step ends the run's only epoch here)
    assert any("val/financial_phrasebank/accuracy" in m for m in read_metrics(outcome.run_dir))


def _killed_driver_run(command: list[str], storage: Path, after_step: int) -> Path:
    """A `finmm` training command in its own process (its own local Ray cluster), SIGKILLed with everything it
    started once it has logged `after_step`; returns the run folder it leaves."""
    log = (storage.parent / "killed-driver.log").open("w")
    driver = subprocess.Popen([sys.executable, "-m", "finmm.cli", *command], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while not any(m.get("step", 0) >= after_step for run in storage.glob("*") for m in _safe_metrics(run)):
            assert driver.poll() is None, f"the driver ended before step {after_step}: {log.name}"
            assert time.monotonic() < deadline, f"no step {after_step} within 300 s: {log.name}"
            time.sleep(0.1)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver, its Ray cluster and its workers
        driver.wait()
    (run_dir,) = storage.glob("*")
    return run_dir


def test_a_killed_finetune_driver_resumes_to_the_uninterrupted_weights(tiny_settings, tiny_overrides, tmp_path):
    common = ["finetune.max_steps=40", "finetune.checkpoint_every=20", "finetune.deepspeed.zero_stage=2"]
    straight = finetune(tiny_settings(*common), ["sentiment"], name="straight")
    # `finmm finetune`'s driver is killed after its step-20 checkpoint; a new driver resumes the run
    storage = tmp_path / "driver-runs"
    killed = _killed_driver_run(["finetune", "--task", "sentiment", *tiny_overrides, *common,
                                 f"cluster.storage_path={storage}"], storage, 25)
    assert (killed / "checkpoint_0000020").is_dir()  # reported (and so complete) before step 25 began
    assert not (killed / "checkpoint_0000040").exists(), "the driver finished before it was killed"
    resumed = finetune(tiny_settings(*common), ["sentiment"], resume=killed)
    assert resumed.run_dir == killed and latest_checkpoint(killed).name == "checkpoint_0000040"
    assert any(m.get("event") == "resumed" and m["step"] == 20 for m in read_metrics(killed))
    # the step-40 weights of each run (the exports would be each run's best validation epoch)
    a = load_file(latest_checkpoint(straight.run_dir) / MODEL_DIR / "model.safetensors")
    b = load_file(latest_checkpoint(killed) / MODEL_DIR / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:  # the tolerance of the 10 + 10 = 20 test below
        torch.testing.assert_close(b[key], a[key], atol=1e-5, rtol=0, msg=key)


def test_two_runs_of_10_steps_match_one_run_of_20(tiny_settings):
    common = ["pretrain.max_steps=20", "pretrain.checkpoint_every=10", "pretrain.deepspeed.zero_stage=2"]
    straight = pretrain(tiny_settings(*common), name="straight")
    first = pretrain(tiny_settings(*common, "pretrain.stop_after_steps=10"), name="halves")
    assert latest_checkpoint(first.run_dir).name == "checkpoint_0000010"
    second = pretrain(tiny_settings(*common), resume=first.run_dir)
    assert second.run_dir == first.run_dir
    assert latest_checkpoint(second.run_dir).name == "checkpoint_0000020"
    events = read_metrics(second.run_dir)
    assert {"event": "resumed", "step": 10}.items() <= next(e for e in events if e.get("event")).items()

    a = load_file(straight.model_dir / "model.safetensors")
    b = load_file(second.model_dir / "model.safetensors")
    assert a.keys() == b.keys()
    # Stated tolerance: 1e-5 absolute on every weight after 20 AdamW steps (gloo all-reduce is ordered).
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-5, rtol=0, msg=key)
    loss_a = [m["loss"] for m in read_metrics(straight.run_dir) if m.get("step") == 20 and "loss" in m]
    loss_b = [m["loss"] for m in events if m.get("step") == 20 and "loss" in m]
    assert loss_a and loss_b and abs(loss_a[0] - loss_b[0]) < 1e-4


def test_killed_worker_is_replaced_and_the_run_completes(tiny_settings):
    settings = tiny_settings("pretrain.max_steps=30", "pretrain.checkpoint_every=10", "pretrain.max_failures=1",
                             "pretrain.batch_size=16")
    run_dir = Path(settings.cluster.storage_path).resolve() / "killed"
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = pretrain(settings, name="killed")
        except BaseException as exc:  # surfaced by the assertion below
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 300
    # Kill once step 15 is logged: by then the step-10 checkpoint is registered with the controller
    # (a checkpoint that is still being uploaded when a worker dies is rightly not used).
    while not any(m.get("step", 0) >= 15 for m in _safe_metrics(run_dir)):
        assert time.monotonic() < deadline and thread.is_alive(), "the run never reached step 15"
        time.sleep(0.2)
    pid = int((run_dir / "pids" / "rank1.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=400)
    assert "error" not in outcome, outcome.get("error")
    assert latest_checkpoint(run_dir).name == "checkpoint_0000030"
    events = [m for m in read_metrics(run_dir) if m.get("event") == "resumed"]
    assert events and events[0]["step"] >= 10, "the restarted workers did not resume from a checkpoint"
    assert int((run_dir / "pids" / "rank1.pid").read_text()) != pid


def test_pretrain_then_finetune_loads_with_from_pretrained(tiny_settings):
    settings = tiny_settings("pretrain.max_steps=3", "finetune.max_steps=3")
    pretrained = pretrain(settings, name="pre")
    backbone = FinMMModel.from_pretrained(pretrained.model_dir, use_safetensors=True)
    assert (pretrained.model_dir / "tokenizer.json").exists()
    assert (pretrained.model_dir / "preprocessing_state.json").exists()
    tuned = finetune(settings, ["sentiment", "credit_risk"], name="multi")
    model = FinMMForTask.from_pretrained(tuned.model_dir, use_safetensors=True)
    assert set(model.config.heads) == {"sentiment", "credit_risk"}
    # finetuning started from the pretrained backbone (latest_pretrained), not from scratch
    assert json.loads((Path(tuned.run_dir) / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 3
    assert backbone.config.text.vocab_size == model.config.text.vocab_size
    assert (Path(settings.finetune.output_dir) / "latest").resolve() == tuned.model_dir.resolve()
    assert (tuned.checkpoint / MODEL_DIR).is_dir()


def test_the_best_validation_epoch_is_exported(tiny_settings):
    """Each epoch is scored on validation; the exported folder is the epoch with the best selection metric (not
    the last), and selection.json says which it was."""
    from cluster.checkpoints import BEST_MODEL_DIR, SELECTION_FILE

    settings = tiny_settings("finetune.epochs=4", "finetune.learning_rate=3e-3", "finetune.checkpoint_every=1000")
    outcome = finetune(settings, ["sentiment"], name="best-epoch")
    logged = [json.loads(x) for x in (outcome.run_dir / "metrics.jsonl").read_text().splitlines()]
    scored = [m for m in logged if "val/financial_phrasebank/accuracy" in m]
    assert len(scored) == 4  # one validation per epoch
    selection = json.loads((outcome.model_dir / SELECTION_FILE).read_text())
    best = max(scored, key=lambda m: m["val/financial_phrasebank/accuracy"])  # the first of equal bests
    assert selection["selected_by"] == "validation" and selection["step"] == best["step"]
    assert selection["value"] == pytest.approx(best["val/financial_phrasebank/accuracy"])
    exported = load_file(str(outcome.model_dir / "model.safetensors"))
    kept = load_file(str(outcome.run_dir / BEST_MODEL_DIR / "model.safetensors"))
    assert exported.keys() == kept.keys() and all(torch.equal(exported[k], kept[k]) for k in kept)
