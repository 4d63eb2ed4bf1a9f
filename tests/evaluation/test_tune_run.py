"""`finmm tune` end to end: a real Ray Tune ASHA search whose trials are Ray Train + DeepSpeed finetunes of
the tiny preset on a slice of the real data, scored on validation, with the best trial written as a recipe.

The search runs in a child process with its own local Ray cluster: a Tune trial nests a TorchTrainer, which
needs the cluster's CPUs free, and the shared session cluster may still hold reservations from earlier tests.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cluster.placement_groups import PLACEMENT_GROUP_FILE
from evaluation.recipes import load_recipe
from finmm.config import load_settings

pytestmark = pytest.mark.timeout(900)

SEARCH = """
import json, sys
import ray
from evaluation.tune import tune_task
from finmm.config import FinMMSettings
settings_path, work_dir, recipe_path, out_path = sys.argv[1:5]
ray.init(address="local", num_cpus=2, include_dashboard=False)
settings = FinMMSettings.model_validate_json(open(settings_path).read())
outcome = tune_task(settings, ["sentiment", "credit_risk"], num_samples=2, max_concurrent=1,
                    work_dir=work_dir, recipe_path=recipe_path)
json.dump({"metric": outcome.metric, "best_score": outcome.best_score, "best_overrides": outcome.best_overrides,
           "recipe_path": str(outcome.recipe_path), "trials": outcome.trials,
           "released_trials": outcome.released_trials}, open(out_path, "w"))
"""


def test_two_task_search_writes_a_recipe_that_finetune_accepts(tiny_settings, tmp_path):
    from evaluation.tune import SCORE

    # seed 13 samples 4 epochs for both trials: Tune stops each at max_t while its fit() may still be
    # running, the case that used to leave the trainer's CPUs reserved and hang the next trial
    settings = tiny_settings("finetune.num_workers=1", "finetune.seed=13")
    (tmp_path / "settings.json").write_text(settings.model_dump_json())
    try:
        done = subprocess.run(
            [sys.executable, "-c", SEARCH, str(tmp_path / "settings.json"), str(tmp_path / "tune"),
             str(tmp_path / "best.tuned.yaml"), str(tmp_path / "outcome.json")],
            capture_output=True, text=True, timeout=840)
    except subprocess.TimeoutExpired as exc:
        folders = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "tune").rglob("*") if p.is_dir())
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        pytest.fail(f"the tune search hung for 840 s; folders: {folders[-20:]}\nstderr tail:\n{stderr[-3000:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads((tmp_path / "outcome.json").read_text())
    assert len(outcome["trials"]) == 2
    assert set(outcome["released_trials"]) <= {p.name for p in (tmp_path / "tune" / "sentiment+credit_risk").iterdir()}
    scored = [t for t in outcome["trials"] if t[SCORE] is not None]
    assert scored and all(t["error"] is None for t in outcome["trials"])
    # the score is the mean of PhraseBank validation accuracy and Lending Club validation AUC
    assert 0.0 <= outcome["best_score"] <= 1.0
    assert outcome["best_score"] == max(t[SCORE] for t in scored)
    assert outcome["metric"] == "accuracy/auc"
    best = outcome["best_overrides"]
    assert {"finetune.loss_weights.sentiment", "finetune.loss_weights.credit_risk"} <= set(best)
    tuned = load_settings(None, load_recipe(outcome["recipe_path"]))
    assert tuned.finetune.tasks == ["sentiment", "credit_risk"]
    assert tuned.finetune.learning_rate == pytest.approx(best["finetune.learning_rate"])
    assert tuned.finetune.loss_weights["credit_risk"] == pytest.approx(best["finetune.loss_weights.credit_risk"])
    # every trial trained with its own sampled weights: its run logged both tasks' losses
    runs = list((tmp_path / "tune" / "sentiment+credit_risk").rglob("metrics.jsonl"))
    assert len(runs) == 2
    for run in runs:
        # rank 0 recorded its placement group, so a trial stopped mid-fit can have its CPUs released
        assert (run.parent / PLACEMENT_GROUP_FILE).read_text().strip()
        text = run.read_text()
        assert '"sentiment"' in text and '"credit_risk"' in text and "val/lending_club/auc" in text
