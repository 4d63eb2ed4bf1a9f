"""Send `finmm` commands to a running Ray cluster as jobs, and manage them (Ray Jobs API)."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from pathlib import Path

from cluster.settings import ClusterSection

TERMINAL_STATES = {"SUCCEEDED", "FAILED", "STOPPED"}


class ClusterUnreachableError(RuntimeError):
    """The Jobs API at the configured address did not answer."""


def _auth_env(cluster: ClusterSection) -> None:
    os.environ["RAY_AUTH_MODE"] = cluster.auth_mode


def job_client(cluster: ClusterSection, address: str | None = None):
    """A JobSubmissionClient for `address` (default cluster.job_address), or a clear error."""
    from ray.job_submission import JobSubmissionClient

    _auth_env(cluster)
    target = address or cluster.job_address
    try:
        return JobSubmissionClient(target)
    except Exception as exc:  # Ray raises ConnectionError or RuntimeError depending on the failure
        raise ClusterUnreachableError(
            f"cannot reach the Ray Jobs API at {target}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}. "
            "Is a cluster running there (`ray start --head`)? Pass --address or set cluster.job_address."
        ) from None


def submit(
    cluster: ClusterSection,
    finmm_args: list[str],
    *,
    address: str | None = None,
    working_dir: Path | None = None,
    submission_id: str | None = None,
    agent_wait_s: float = 120.0,
) -> str:
    """Submit `finmm <finmm_args>` with the repository as working_dir; return the submission id. A cluster
    whose job agent is still starting is retried for up to `agent_wait_s` seconds."""
    if not finmm_args:
        raise ValueError("nothing to submit: give a finmm command after --, e.g. finmm submit -- prepare")
    client = job_client(cluster, address)
    runtime_env = dict(cluster.runtime_env)
    runtime_env.setdefault("working_dir", str(working_dir or Path.cwd()))
    env_vars = dict(runtime_env.get("env_vars", {}))
    env_vars.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    runtime_env["env_vars"] = env_vars
    entrypoint = "python -m finmm.cli " + " ".join(shlex.quote(a) for a in finmm_args)
    deadline = time.monotonic() + agent_wait_s
    while True:
        try:
            return client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env, submission_id=submission_id)
        except Exception as exc:
            # A head that has just started answers before its job agent is up; that is worth waiting for.
            if "No available agent" in str(exc) and time.monotonic() < deadline:
                time.sleep(2.0)
                continue
            raise ClusterUnreachableError(
                f"job submission to {address or cluster.job_address} failed: {exc}"
            ) from None


def wait(
    cluster: ClusterSection,
    submission_id: str,
    *,
    address: str | None = None,
    timeout_s: float = 600,
    on_status: Callable[[str], None] | None = None,
) -> str:
    """Poll until the job ends; return its final status (SUCCEEDED, FAILED or STOPPED)."""
    client = job_client(cluster, address)
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            status = str(client.get_job_status(submission_id).value)
        except Exception as exc:
            raise ClusterUnreachableError(
                f"lost the Ray cluster at {address or cluster.job_address} while following job "
                f"{submission_id}: {exc.__class__.__name__}"
            ) from None
        if status != last and on_status:
            on_status(status)
        last = status
        if status in TERMINAL_STATES:
            return status
        time.sleep(1.0)
    raise TimeoutError(f"job {submission_id} still {last} after {timeout_s:.0f} s")


def list_jobs(cluster: ClusterSection, address: str | None = None) -> list[dict]:
    """One dict per job: id, status, entrypoint, start and end times."""
    jobs = job_client(cluster, address).list_jobs()
    return [
        {
            "submission_id": j.submission_id,
            "status": str(j.status.value),
            "entrypoint": j.entrypoint,
            "start_time": j.start_time,
            "end_time": j.end_time,
        }
        for j in jobs
    ]


def status(cluster: ClusterSection, submission_id: str, address: str | None = None) -> str:
    return str(job_client(cluster, address).get_job_status(submission_id).value)


def logs(cluster: ClusterSection, submission_id: str, address: str | None = None) -> str:
    return job_client(cluster, address).get_job_logs(submission_id)


def stop(cluster: ClusterSection, submission_id: str, address: str | None = None) -> bool:
    return bool(job_client(cluster, address).stop_job(submission_id))
