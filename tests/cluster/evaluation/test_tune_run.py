"""`finmm tune` end to end: a real Ray Tune ASHA search whose trials are Ray Train + DeepSpeed finetunes of
the tiny preset on a slice of the real data, scored on validation, with the best trial written as a recipe."""

from __future__ import annotations

import pytest

from cluster.evaluation.recipes import load_recipe
from cluster.evaluation.tune import SCORE, tune_task
from finmm.config import load_settings

pytestmark = pytest.mark.timeout(900)


def test_two_task_search_writes_a_recipe_that_finetune_accepts(tiny_settings, tmp_path):
    settings = tiny_settings("finetune.num_workers=1")
    outcome = tune_task(settings, ["sentiment", "credit_risk"], num_samples=2, max_concurrent=1,
                        work_dir=tmp_path / "tune", recipe_path=tmp_path / "best.tuned.yaml")
    assert len(outcome.trials) == 2
    scored = [t for t in outcome.trials if t[SCORE] is not None]
    assert scored and all(t["error"] is None for t in outcome.trials)
    # the score is the mean of PhraseBank validation accuracy and Lending Club validation AUC
    assert 0.0 <= outcome.best_score <= 1.0
    assert outcome.best_score == max(t[SCORE] for t in scored)
    assert outcome.metric == "accuracy/auc"
    assert {"finetune.loss_weights.sentiment", "finetune.loss_weights.credit_risk"} <= set(outcome.best_overrides)
    tuned = load_settings(None, load_recipe(outcome.recipe_path))
    assert tuned.finetune.tasks == ["sentiment", "credit_risk"]
    assert tuned.finetune.learning_rate == pytest.approx(outcome.best_overrides["finetune.learning_rate"])
    assert tuned.finetune.loss_weights["credit_risk"] == pytest.approx(
        outcome.best_overrides["finetune.loss_weights.credit_risk"])
    # every trial trained with its own sampled weights: its run logged both tasks' losses
    runs = list((tmp_path / "tune" / "sentiment+credit_risk").rglob("metrics.jsonl"))
    assert len(runs) == 2
    for run in runs:
        text = run.read_text()
        assert '"sentiment"' in text and '"credit_risk"' in text and "val/lending_club/auc" in text
