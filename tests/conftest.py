"""Shared pytest fixtures. `ray_cluster`: one local Ray cluster per test session, for the tests that ask;
`served_bundle`: the tiny four-head bundle that the serve and reliability tests serve, built once;
`prepared_for_training`, `tiny_overrides`, `tiny_settings`: a small real slice of the prepared data and tiny
settings, for the training (tests/cluster) and evaluation (tests/evaluation) tests."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from finmm.config import load_settings

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def ray_cluster():
    """A private local Ray cluster with 2 CPUs (never attaches to a running `ray start` cluster)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def served_bundle(ray_cluster, tmp_path_factory) -> Path:
    """tests/serve/conftest.py `build_bundle` over a real 32-rows-per-split slice, once per session."""
    path = Path(__file__).parent / "serve" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_finmm_serve_bundle", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_bundle(tmp_path_factory.mktemp("served-bundle"))


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
