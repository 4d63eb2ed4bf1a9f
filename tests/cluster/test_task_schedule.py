"""finetune.task_epochs: the interleaved schedule, its config checks, and a real 2-worker run that follows it."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from cluster.task_schedule import interleaved_schedule, steps_for_epochs, validation_interval
from finmm.config import ConfigError, load_settings


def test_each_task_gets_its_steps_spread_through_the_run():
    schedule = interleaved_schedule([6, 2, 1])
    assert Counter(schedule) == {0: 6, 1: 2, 2: 1}
    assert schedule[len(schedule) // 2] == 2, "a one-step task sits mid-run, not at the end"
    ones = [i for i, task in enumerate(schedule) if task == 1]
    assert ones[0] < len(schedule) / 2 < ones[1], "task 1's two steps fall one in each half"
    assert interleaved_schedule([3, 3]) == [0, 1, 0, 1, 0, 1]


def test_steps_and_validation_follow_the_passes():
    assert steps_for_epochs(3, 10, 1) == 30
    assert steps_for_epochs(0.25, 10, 2) == 1
    assert steps_for_epochs(0.01, 10, 1) == 1, "a listed task trains at least once"
    assert validation_interval(30, [3, 0.5]) == 10
    assert validation_interval(7, [0.2]) == 7


def test_task_epochs_are_validated():
    settings = load_settings(None, ["finetune.task_epochs.sentiment=2.5"])
    assert settings.finetune.task_epochs == {"sentiment": 2.5}
    with pytest.raises(ConfigError, match="finite number of passes > 0"):
        load_settings(None, ["finetune.task_epochs.sentiment=0"])
    with pytest.raises(ConfigError, match="leave finetune.max_steps empty"):
        load_settings(None, ["finetune.task_epochs.sentiment=1", "finetune.max_steps=5"])


@pytest.mark.timeout(600)
def test_an_interleaved_run_trains_one_task_per_step(tiny_settings):
    from cluster.trainer import finetune

    settings = tiny_settings("finetune.task_epochs.sentiment=2", "finetune.task_epochs.customer_service=1",
                             "finetune.log_every=1", "finetune.checkpoint_every=100")
    with pytest.raises(ValueError, match="no entry for \\['credit_risk'\\]"):
        finetune(settings, ["sentiment", "credit_risk"], name="unset")
    outcome = finetune(settings, ["sentiment", "customer_service"], name="interleaved")
    records = [json.loads(line) for line in (outcome.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    trained = [[t for t in ("sentiment", "customer_service") if t in r] for r in steps]
    # 32 rows per split -> 16 per rank -> 2 micro-batches of 8: sentiment 2 passes = 4 steps, intents 1 pass = 2
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    assert trained == [[t] for t in ("sentiment", "customer_service", "sentiment") * 2], trained
    assert any("val/banking77/accuracy" in r for r in records) and any(
        "val/financial_phrasebank/accuracy" in r for r in records)
