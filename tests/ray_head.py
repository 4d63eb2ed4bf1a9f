"""Start a private `ray start --head` for tests that need a real head (job submission, losing the head).

Every port is a free one: the session's own local cluster (tests/conftest.py) already holds Ray's default
agent ports, and a second head on those defaults starts without a job agent ("No available agent to
submit job"). The head runs with `--block` in its own process group, so a test stops only this cluster.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_head(temp_dir: Path, num_cpus: int = 1) -> tuple[subprocess.Popen, str]:
    """Start the head; return (process, Jobs API address) once the dashboard accepts connections."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "disabled",
           "RAY_USAGE_STATS_ENABLED": "0"}
    dashboard_port = free_port()
    low = free_port()
    ports = [f"--port={free_port()}", f"--dashboard-port={dashboard_port}",
             f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
             f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}",
             f"--ray-client-server-port={free_port()}", f"--node-manager-port={free_port()}",
             f"--object-manager-port={free_port()}", f"--min-worker-port={low}", f"--max-worker-port={low + 200}"]
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", f"--num-cpus={num_cpus}", "--include-dashboard=true",
         "--dashboard-host=127.0.0.1", f"--temp-dir={temp_dir}", *ports],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", dashboard_port)) == 0:
                return head, f"http://127.0.0.1:{dashboard_port}"
        if head.poll() is not None:
            raise RuntimeError("ray start --head exited before its dashboard came up")
        time.sleep(1)
    stop_head(head)
    raise RuntimeError("ray start --head did not bring up the dashboard within 120 s")


def stop_head(head: subprocess.Popen) -> None:
    if head.poll() is None:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)
