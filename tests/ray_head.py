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


def _distinct_ports(count: int, avoid: range) -> list[int]:
    """`count` free ports, all different and none inside `avoid` (Ray refuses a head whose ports overlap)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in avoid and port not in ports:
            ports.append(port)
    return ports


def start_head(temp_dir: Path, num_cpus: int = 1, attempts: int = 3) -> tuple[subprocess.Popen, str]:
    """Start the head; return (process, Jobs API address) once the dashboard accepts connections.

    Free ports are only free when they are drawn: another process may take one before the head binds it, and
    then `ray start` exits. Each attempt draws new ports; the head's own output goes to `temp_dir/head.log`,
    and the last attempt's log is in the error.
    """
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "disabled",
           "RAY_USAGE_STATS_ENABLED": "0"}
    temp_dir.mkdir(parents=True, exist_ok=True)
    log_path = temp_dir / "head.log"
    for _ in range(attempts):
        low = free_port()
        workers = range(low, low + 201)
        (gcs, dashboard_port, agent_listen, agent_grpc, runtime_env, metrics, client, node_manager,
         object_manager) = _distinct_ports(9, avoid=workers)
        ports = [f"--port={gcs}", f"--dashboard-port={dashboard_port}",
                 f"--dashboard-agent-listen-port={agent_listen}", f"--dashboard-agent-grpc-port={agent_grpc}",
                 f"--runtime-env-agent-port={runtime_env}", f"--metrics-export-port={metrics}",
                 f"--ray-client-server-port={client}", f"--node-manager-port={node_manager}",
                 f"--object-manager-port={object_manager}", f"--min-worker-port={workers.start}",
                 f"--max-worker-port={workers.stop - 1}"]
        with log_path.open("wb") as log:
            head = subprocess.Popen(
                [str(BIN / "ray"), "start", "--head", "--block", f"--num-cpus={num_cpus}",
                 "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--temp-dir={temp_dir}", *ports],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and head.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", dashboard_port)) == 0:
                    return head, f"http://127.0.0.1:{dashboard_port}"
            time.sleep(1)
        if head.poll() is None:
            stop_head(head)
            raise RuntimeError(f"ray start --head did not bring up the dashboard within 120 s; see {log_path}")
        try:  # whatever the failed head had started in its group goes with it
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    tail = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"ray start --head exited before its dashboard came up, {attempts} times; last output:\n{tail}")


def stop_head(head: subprocess.Popen) -> None:
    if head.poll() is None:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)
