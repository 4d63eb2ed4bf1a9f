"""`finmm submit` and `finmm jobs` against a real head started with `ray start --head`.

Only the head this test starts is stopped (by terminating its `ray start --block` process
group), never other Ray processes on the machine: `ray stop` would kill them all.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def finmm(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "finmm.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    gcs_port, dashboard_port = free_port(), free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", f"--port={gcs_port}", "--num-cpus=1",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
         f"--temp-dir={tmp_path_factory.mktemp('ray')}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard_port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", dashboard_port)) == 0:
                break
        time.sleep(1)
    else:
        os.killpg(head.pid, signal.SIGTERM)
        pytest.fail("ray start --head did not bring up the dashboard within 90 s")
    yield head, address
    if head.poll() is None:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)


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
