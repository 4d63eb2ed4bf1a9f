"""`finmm submit` and `finmm jobs` against a real head started with `ray start --head`.

Only the head this test starts is stopped (by terminating its `ray start --block` process
group), never other Ray processes on the machine: `ray stop` would kill them all.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ray_head import free_port, start_head, stop_head

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def finmm(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "finmm.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def ray_head():
    temp = Path(f"/tmp/finmm-jobs-{os.getpid()}")  # short: Ray's socket paths must stay under 108 bytes
    head, address = start_head(temp)
    yield head, address
    stop_head(head)


@pytest.mark.timeout(300)
def test_submit_follows_a_job_to_success_and_jobs_commands_see_it(ray_head):
    _head, address = ray_head
    result = finmm("submit", "--address", address, "--", "config", "validate", "ray_config.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCEEDED" in result.stdout
    job_id = result.stdout.split("submitted ", 1)[1].split()[0]

    listing = finmm("jobs", "list", "--address", address)
    assert job_id in listing.stdout
    assert finmm("jobs", "status", job_id, "--address", address).stdout.strip() == "SUCCEEDED"
    assert "valid" in finmm("jobs", "logs", job_id, "--address", address).stdout


@pytest.mark.timeout(300)
def test_failing_job_reports_failure(ray_head):
    _head, address = ray_head
    result = finmm("submit", "--address", address, "--", "config", "validate", "no-such-file.yaml")
    assert result.returncode == 1
    assert "FAILED" in result.stdout


@pytest.mark.timeout(120)
def test_unreachable_cluster_is_a_clear_error():
    result = finmm("submit", "--address", f"http://127.0.0.1:{free_port()}", "--", "config", "show", timeout=100)
    assert result.returncode == 3
    assert "cannot reach the Ray Jobs API" in result.stderr or "failed" in result.stderr
