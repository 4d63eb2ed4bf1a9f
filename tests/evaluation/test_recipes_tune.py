"""Recipes validate against the config schema; the tune search space and recipe write-back round-trip."""

import json
from pathlib import Path

import pytest

from evaluation.recipes import RECIPES_DIR, load_recipe, merge_recipe, write_recipe
from evaluation.tune import _epoch_scores, apply_overrides, search_space, validation_score
from finmm.config import load_settings


@pytest.mark.parametrize("task", ["credit_risk", "stock_movement", "sentiment", "customer_service"])
def test_recipe_validates(task, tmp_path):
    path = RECIPES_DIR / f"{task}.yaml"
    settings = load_settings(None, load_recipe(path))
    assert settings.finetune.tasks == [task]
    merged = merge_recipe(Path("ray_config.yaml") if Path("ray_config.yaml").exists() else None, path,
                          tmp_path / "merged.yaml")
    assert load_settings(merged).finetune.learning_rate == settings.finetune.learning_rate


def test_bad_recipe_key_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("serve:\n  http: {}\n")
    with pytest.raises(ValueError, match="may only set"):
        load_recipe(bad)


def test_search_space_keys_exist_and_best_trial_writes_a_recipe(tmp_path):
    from ray.tune.search.sample import Domain

    settings = load_settings(None, [])
    space = search_space(settings, ["sentiment"])
    assert {"finetune.learning_rate", "finetune.epochs", "finetune.batch_size"} <= set(space)
    sampled = {k: v.sample() if isinstance(v, Domain) else v for k, v in space.items()}
    applied = apply_overrides(settings.model_dump(mode="json"), sampled)
    assert applied["finetune"]["learning_rate"] == sampled["finetune.learning_rate"]
    path = write_recipe(tmp_path / "sentiment.tuned.yaml", {"finetune.tasks": ["sentiment"], **sampled}, "best")
    tuned = load_settings(None, load_recipe(path))
    assert tuned.finetune.batch_size == sampled["finetune.batch_size"]
    assert tuned.finetune.learning_rate == pytest.approx(sampled["finetune.learning_rate"])


def test_validation_score_reads_the_trainer_metrics_log(tmp_path):
    log = tmp_path / "metrics.jsonl"
    lines = [{"step": 5, "loss": 1.0},
             {"step": 10, "epoch": 1.0, "val/financial_phrasebank/accuracy": 0.7, "val/fincuge_finfe/accuracy": 0.6},
             {"step": 20, "epoch": 2.0, "val/financial_phrasebank/accuracy": 0.8, "val/fincuge_finfe/accuracy": 0.7}]
    log.write_text("\n".join(json.dumps(x) for x in lines))
    assert validation_score(lines[1], "sentiment") == pytest.approx(0.65)
    assert validation_score({"val/lending_club/auc": 0.7}, "credit_risk") == pytest.approx(0.7)
    assert _epoch_scores(log, ["sentiment"], 0) == [(1.0, pytest.approx(0.65)), (2.0, pytest.approx(0.75))]
    assert _epoch_scores(log, ["sentiment"], 1) == [(2.0, pytest.approx(0.75))]


def test_trials_fit_on_the_cluster():
    from evaluation.tune import TRIAL_CPU, fit_worker_cpus

    settings = load_settings(None, ["finetune.num_workers=2", "finetune.cpus_per_worker=1.0"])
    cpus = fit_worker_cpus(settings, max_concurrent=1, cluster_cpus=2)
    assert TRIAL_CPU + 2 * cpus <= 2  # else the nested TorchTrainer would wait for CPUs forever
    assert fit_worker_cpus(settings, max_concurrent=1, cluster_cpus=16) == 1.0


def test_several_tasks_search_their_loss_weights_and_score_by_the_mean(tmp_path):
    from ray.tune.search.sample import Domain

    from evaluation.tune import tasks_score

    settings = load_settings(None, [])
    tasks = ["sentiment", "customer_service"]
    space = search_space(settings, tasks)
    assert {"finetune.loss_weights.sentiment", "finetune.loss_weights.customer_service"} <= set(space)
    assert not any("loss_weights" in k for k in search_space(settings, ["sentiment"]))
    sampled = {k: v.sample() if isinstance(v, Domain) else v for k, v in space.items()}
    path = write_recipe(tmp_path / "two.tuned.yaml", {"finetune.tasks": tasks, **sampled}, "best")
    tuned = load_settings(None, load_recipe(path))
    assert tuned.finetune.loss_weights["customer_service"] == pytest.approx(
        sampled["finetune.loss_weights.customer_service"])
    record = {"val/financial_phrasebank/accuracy": 0.8, "val/fincuge_finfe/accuracy": 0.6,
              "val/banking77/accuracy": 0.5}
    assert tasks_score(record, tasks) == pytest.approx((0.7 + 0.5) / 2)
    assert tasks_score({"val/banking77/accuracy": 0.5}, tasks) is None
