"""A Ray Train run whose owner is killed mid-`fit()` (what Tune does to a stopped trial) leaves its workers'
placement group holding CPUs; `release_placement_group` frees them. Real Ray cluster, no dashboard."""

from __future__ import annotations

import time

import pytest

from cluster.placement_groups import PLACEMENT_GROUP_FILE, actor_exited, release_placement_group

pytestmark = pytest.mark.timeout(300)


def _wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def test_killed_trainer_owner_leaves_a_group_that_release_frees(ray_cluster, tmp_path):
    import ray

    run_dir = tmp_path / "run"

    @ray.remote(num_cpus=0.01)
    class TrialLike:
        """Owns a TorchTrainer the way a Tune function trial does."""

        def fit(self, run_dir: str, storage: str) -> None:
            from ray.train import RunConfig, ScalingConfig
            from ray.train.torch import TorchTrainer

            def loop(config):
                from pathlib import Path

                from cluster.placement_groups import record_placement_group

                record_placement_group(Path(config["run_dir"]))
                time.sleep(600)

            TorchTrainer(loop, train_loop_config={"run_dir": run_dir},
                         scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1.0}),
                         run_config=RunConfig(name="killed", storage_path=storage)).fit()

    free_before = ray.available_resources().get("CPU", 0.0)
    owner = TrialLike.remote()
    owner_id = owner._actor_id.hex()
    owner.fit.remote(str(run_dir), str(tmp_path / "storage"))
    _wait_for(lambda: (run_dir / PLACEMENT_GROUP_FILE).exists(), 180, "the worker to record its placement group")
    # while its owner lives, the run is left alone
    assert release_placement_group(run_dir, owner_id, wait_s=1.0) is None
    assert not actor_exited(owner_id)

    ray.kill(owner)
    _wait_for(lambda: actor_exited(owner_id), 60, "the owner to exit")
    time.sleep(3)
    # the group outlives its dead owner: one CPU stays reserved
    assert ray.available_resources().get("CPU", 0.0) <= free_before - 1.0 + 1e-6

    assert release_placement_group(run_dir, owner_id) is True
    _wait_for(lambda: ray.available_resources().get("CPU", 0.0) >= free_before - 1e-6, 60, "the CPUs to be free again")
    assert release_placement_group(run_dir, owner_id) is False  # already removed: nothing to do


def test_release_without_a_recorded_group_does_nothing(ray_cluster, tmp_path):
    assert release_placement_group(tmp_path) is False
