"""Record a training run's placement group, and release it if the run's owner died without doing so.

Ray Train's controller removes its workers' placement group when `fit()` ends. When the process that
called `fit()` is killed first (a Ray Tune trial stopped by ASHA, or stopped on reaching its last epoch),
the controller dies with it, and a placement group created from an actor lives until the whole job ends.
Ray Train's own cleaner asks the dashboard's state API whether the controller is alive; finmm runs Ray
without the dashboard (`cluster.include_dashboard: false`), so that cleaner never fires and the dead run's
CPUs stay reserved: the next trial's trainer then waits for them forever, with no error. Rank 0 writes the
placement group's id into the run folder, and `finmm tune` releases it when the trial ends.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

PLACEMENT_GROUP_FILE = "placement_group.txt"
"""File in a run folder holding the hex id of the placement group its workers run in."""

logger = logging.getLogger(__name__)


def record_placement_group(run_dir: Path) -> str | None:
    """Write the calling worker's placement group id to `run_dir`; returns it (None outside a group)."""
    import ray.util

    group = ray.util.get_current_placement_group()
    if group is None:
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / PLACEMENT_GROUP_FILE).write_text(group.id.hex())
    return group.id.hex()


def actor_exited(actor_id: str) -> bool:
    """Whether the actor is dead (or unknown), read from the GCS actor table (works without the dashboard)."""
    import ray._private.state

    info = ray._private.state.actors(actor_id=actor_id)
    return not info or info.get("State") == "DEAD"


def release_placement_group(run_dir: Path, owner_actor_id: str | None = None, wait_s: float = 0.0) -> bool | None:
    """Remove the placement group recorded in `run_dir` if it still holds resources.

    `owner_actor_id`: the actor that called `fit()`. While it is alive (after waiting up to `wait_s`) the group
    is left alone, so a run still shutting down is never cut short. Without it, call only once the owner is
    gone: the workers in the group are killed.
    Returns True if removed, False if there was nothing to remove (no record, or the run removed it itself),
    None if the owner is still alive (ask again later)."""
    from ray._raylet import PlacementGroupID
    from ray.util.placement_group import PlacementGroup, placement_group_table, remove_placement_group

    path = Path(run_dir) / PLACEMENT_GROUP_FILE
    if not path.exists():
        return False
    group = PlacementGroup(PlacementGroupID(bytes.fromhex(path.read_text().strip())))
    if owner_actor_id is not None:
        deadline = time.monotonic() + wait_s
        while not actor_exited(owner_actor_id):
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.5)
    if placement_group_table(group).get("state") in (None, "REMOVED"):
        return False
    remove_placement_group(group)
    logger.warning("released placement group %s left behind by the stopped run in %s", group.id.hex(), run_dir)
    return True
