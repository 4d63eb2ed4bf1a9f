"""Start or join the Ray cluster that a `finmm` command runs on."""

from __future__ import annotations

import os

from cluster.settings import ClusterSection


def ensure_ray(cluster: ClusterSection) -> None:
    """Connect to `cluster.address`, or start a local cluster, unless Ray is already up.

    A local cluster gets no dashboard by default: it halves Ray's memory and process count,
    which matters on a 2-core machine (see docs/cluster.md).
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if cluster.address:
        ray.init(address=cluster.address, log_to_driver=True)
    else:
        ray.init(
            address="local",
            num_cpus=cluster.num_cpus,
            include_dashboard=cluster.include_dashboard,
            log_to_driver=True,
        )
