"""Shared pytest fixtures. `ray_cluster`: one local Ray cluster per test session, for the tests that ask;
`served_bundle`: the tiny four-head bundle that the serve and reliability tests serve, built once."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

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
