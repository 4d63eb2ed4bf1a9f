"""Losing the Ray head that `finmm submit` follows: the client ends with exit code 3 and one clear line
("lost the Ray cluster ..."), not a traceback.

A private head is started with `ray start --head --block` in its own process group (as tests/cluster/
test_jobs.py does) and only that group, plus the processes it started, is killed: never `ray stop`.
The submitted job must still be running when the head goes: its interpreter sleeps at start-up (a
`sitecustomize.py` on the job's PYTHONPATH, given through cluster.runtime_env in a config file; Ray's job
supervisor gets the same environment, so the file sleeps only in the `finmm.cli` process).

Worker loss during training is covered by tests/cluster/test_training.py
(test_killed_worker_is_replaced_and_the_run_completes); it is not repeated here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from ray_head import start_head
from reliability_helpers import REPO, record

BIN = Path(sys.executable).parent


def _descendants(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _follow_until_running(submit: subprocess.Popen, deadline: float) -> list[str]:
    lines = []
    while time.monotonic() < deadline:
        line = submit.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.rstrip().endswith(": RUNNING"):
            break
    return lines


@pytest.mark.timeout(300)
def test_head_lost_while_following_a_job_is_exit_3_without_traceback(tmp_path):
    import psutil

    temp = Path(f"/tmp/finmm-rel-{os.getpid()}")  # short: Ray's socket paths must stay under 108 bytes
    head, address = start_head(temp)
    dashboard_port = int(address.rsplit(":", 1)[1])
    started: list = []
    submit = None
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "disabled",
           "RAY_USAGE_STATS_ENABLED": "0"}
    try:
        slow = tmp_path / "slow_start"
        slow.mkdir()
        (slow / "sitecustomize.py").write_text(  # only the job's `python -m finmm.cli`, not Ray's own workers
            "import time\nif b'finmm.cli' in open('/proc/self/cmdline', 'rb').read():\n    time.sleep(150)\n")
        config = tmp_path / "cluster.yaml"
        config.write_text(yaml.safe_dump({"cluster": {"runtime_env": {"env_vars": {"PYTHONPATH": str(slow)}}}}))
        command = [sys.executable, "-m", "finmm.cli", "submit", "--config", str(config),
                   "--address", f"http://127.0.0.1:{dashboard_port}", "--", "config", "show"]
        deadline = time.monotonic() + 150
        while True:  # the dashboard answers before its job agent is up: submit again until it takes the job
            submit = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
            out_lines = _follow_until_running(submit, deadline)
            if out_lines and out_lines[-1].rstrip().endswith(": RUNNING"):
                break
            err = submit.communicate(timeout=60)[1]
            assert "No available agent" in err and time.monotonic() < deadline, "".join(out_lines) + err
            time.sleep(2)

        started = _descendants(head.pid)
        killed_at = time.monotonic()
        os.killpg(head.pid, signal.SIGKILL)  # the head machine goes away: no clean shutdown
        out, err = submit.communicate(timeout=120)
        reported_after = time.monotonic() - killed_at
    finally:
        if head.poll() is None:
            started = started or _descendants(head.pid)
            os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=30)
        for proc in started:  # processes the head started in their own sessions (e.g. the job's driver)
            try:
                proc.kill()
            except psutil.Error:
                pass
        if submit is not None and submit.poll() is None:
            submit.kill()
        import shutil

        shutil.rmtree(temp, ignore_errors=True)

    output = "".join(out_lines) + out
    assert submit.returncode == 3, output + err
    assert "lost the Ray cluster" in err or "cannot reach" in err, err
    assert "Traceback" not in err + output, err
    message = err[err.index("error:"):]  # Ray's own INFO lines about the upload come first
    assert len([line for line in message.splitlines() if line.strip()]) <= 3, message
    record("head_loss", exit_code=submit.returncode, message=" ".join(message.split())[:200],
           reported_after_s=round(reported_after, 1))
