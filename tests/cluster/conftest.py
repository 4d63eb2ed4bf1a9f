"""Fixtures for the training tests: a small real slice of the prepared data, and tiny settings."""

from __future__ import annotations

import pytest

from finmm.config import load_settings

TRAIN_DATASETS = ["financial_phrasebank", "lending_club", "stocknet"]
"""Data sets whose slice feeds the pretraining tests: every modality."""
PREPARED_DATASETS = [*TRAIN_DATASETS, "banking77"]
"""Prepared for the tests: also Banking77, so that each of the four tasks has a slice to finetune on."""


@pytest.fixture(scope="session")
def prepared_for_training(ray_cluster, tmp_path_factory):
    """32 rows per split of four data sets (one per task, every modality), prepared by the real pipeline."""
    from actors.pipeline import prepare
    from actors.settings import DataSection

    out = tmp_path_factory.mktemp("train-data")
    prepare(DataSection(max_rows_per_split=32, output_dir=out), PREPARED_DATASETS)
    return out


@pytest.fixture
def tiny_overrides(prepared_for_training, tmp_path) -> list[str]:
    """The dotted overrides of a 2-worker CPU run of the tiny preset over the prepared slice (for the CLI)."""
    return tiny_override_list(prepared_for_training, tmp_path)


def tiny_override_list(data_dir, tmp_path) -> list[str]:
    """`tiny_overrides` over any prepared folder, outputs under `tmp_path` (bench/training_log_marker.py too)."""
    return [
        f"data.output_dir={data_dir}",
        "model.preset=tiny",
        "model.init_from_minilm=false",
        "model.dropout=0.0",
        f"cluster.storage_path={tmp_path / 'runs'}",
        f"pretrain.output_dir={tmp_path / 'pretrain'}",
        f"finetune.output_dir={tmp_path / 'finetune'}",
        f"pretrain.text_datasets={TRAIN_DATASETS}",
        "pretrain.batch_size=8",
        "finetune.batch_size=8",
        "pretrain.log_every=5",
        "finetune.log_every=5",
        "pretrain.max_failures=0",
        "finetune.max_failures=0",
    ]


@pytest.fixture
def tiny_settings(tiny_overrides):
    """Settings for a 2-worker CPU run of the tiny preset over the prepared slice."""

    def make(*overrides: str):
        return load_settings(None, [*tiny_overrides, *overrides])

    return make
