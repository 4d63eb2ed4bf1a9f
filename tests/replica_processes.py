"""Find this test session's Serve replica processes, for the tests that kill one (tests/serve, tests/reliability)."""

from __future__ import annotations


def replica_pids(deployment: str, app: str = "finmm") -> set[int]:
    """PIDs of the replica processes of `deployment` (Ray titles them `ray::ServeReplica:app:Name`); only
    descendants of this test process are looked at, so another session's cluster is never touched."""
    import psutil

    tag = f"ServeReplica:{app}:{deployment}"
    pids = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            if any(tag in part for part in proc.cmdline()):
                pids.add(proc.pid)
        except psutil.Error:
            continue
    return pids
