"""What `finmm demo` shows a newcomer (issue 14): a quiet terminal, Ray's output in the run's log file, and a
failing stage as one what / where / how-to-fix block with a non-zero exit code."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from actors.data_root import resolve_data_root
from actors.sources import SOURCES
from finmm.progress import MetricsTail, describe
from finmm.run_log import error_block

REPO = Path(__file__).resolve().parents[2]


def demo_cli(cwd: Path, data_root: Path, *args: str, timeout: int) -> subprocess.CompletedProcess:
    """`finmm demo --quick ...` as a user runs it, in `cwd` (its artifacts/ and logs land there)."""
    env = {**os.environ, "FINMM_DATA_DIR": str(data_root), "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "finmm.cli", "demo", "--quick", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def log_file(cwd: Path) -> Path:
    logs = sorted((cwd / "artifacts" / "logs").glob("demo-*.log"))
    assert len(logs) == 1, logs
    return logs[0]


def test_metrics_tail_reads_whole_lines_only(tmp_path):
    path = tmp_path / "metrics.jsonl"
    seen: list[dict] = []
    tail = MetricsTail(path, seen.append)
    tail.poll()  # no file yet
    path.write_text(json.dumps({"step": 1, "loss": 2.5, "samples_per_s": 10.0}) + "\n" + '{"step": 2, "lo')
    tail.poll()
    assert [r["step"] for r in seen] == [1]
    with path.open("a") as fh:
        fh.write('ss": 2.0}\n')
    tail.poll()
    assert [r["step"] for r in seen] == [1, 2]
    assert describe({"step": 3, "loss": 1.23456, "samples_per_s": 7.0}) == "loss 1.235 · 7.0 samples/s"


def test_error_block_has_the_config_errors_shape():
    console = Console(record=True, width=200)
    error_block(console, "the prepare stage failed: [x]", "file data/x.csv", "put it back")
    text = console.export_text()
    assert "error: the prepare stage failed: [x]" in text
    assert "where: file data/x.csv" in text and "how to fix: put it back" in text


def test_the_trainer_drops_the_placement_group_cleaner_without_the_state_api(ray_cluster):
    from ray.train import ScalingConfig
    from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback

    from cluster.trainer import _torch_trainer_class, state_api_available

    assert not state_api_available()  # the test cluster runs without the dashboard, like finmm's default
    trainer = _torch_trainer_class()(lambda: None, scaling_config=ScalingConfig(num_workers=1))
    callbacks = trainer._create_default_callbacks()
    assert callbacks and not any(isinstance(c, PlacementGroupCleanerCallback) for c in callbacks)


def data_root_missing_a_file(tmp_path: Path) -> tuple[Path, Path]:
    """Every real data set, except that Financial PhraseBank lacks its main file."""
    real = resolve_data_root(None)
    root = tmp_path / "data"
    root.mkdir()
    spec = SOURCES["financial_phrasebank"]
    missing = spec.files[0]
    for folder in real.iterdir():
        if folder.name != spec.name:
            (root / folder.name).symlink_to(folder.resolve())
    for rel in spec.required_files(real):
        if rel != missing:
            dst = root / spec.name / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to((real / spec.name / rel).resolve())
    return root, root / spec.name / missing


@pytest.mark.timeout(600)
def test_a_failing_stage_prints_one_error_block_and_exits_non_zero(tmp_path):
    root, missing = data_root_missing_a_file(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    result = demo_cli(work, root, timeout=540)
    terminal = result.stdout + result.stderr
    assert result.returncode == 1, terminal[-3000:]
    assert "error: the prepare stage failed: DataFileError" in result.stderr, terminal[-3000:]
    assert "where:" in result.stderr and "how to fix:" in result.stderr
    assert missing.name in result.stderr and "FINMM_DATA_DIR" in result.stderr
    log = log_file(work)
    assert str(log) in terminal  # the terminal names the log file ...
    assert "Traceback (most recent call last)" in log.read_text()  # ... which holds the traceback
    assert "Traceback" not in terminal
    assert len(terminal.splitlines()) <= 30, terminal


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(1500)
def test_a_quick_demo_runs_every_stage_fits_in_60_lines_and_its_log_holds_the_ray_output(tmp_path):
    port = f"serve.http.port={free_port()}"
    result = demo_cli(tmp_path, resolve_data_root(None), port, timeout=1200)
    terminal = result.stdout + result.stderr
    print(terminal)  # what the user saw (shown by pytest -s, and on failure)
    assert result.returncode == 0, terminal[-4000:]  # 0 = every endpoint answered
    root = tmp_path / "artifacts" / "demo-quick"
    for stage in ("prepare", "pretrain", "finetune", "evaluate"):
        marker = json.loads((root / "stages" / f"{stage}.json").read_text())
        assert all(Path(p).exists() for p in marker["outputs"]), stage
    assert (root / "finetune" / "latest" / "model.safetensors").exists()
    assert "Error" not in terminal.split("sample requests")[-1]
    lines = terminal.splitlines()
    assert len(lines) <= 60, f"{len(lines)} lines:\n{terminal}"
    for noise in ("[finmm] step", "pid=", "TrainingReport(", "Failed to query Ray Train Controller"):
        assert noise not in terminal, noise
    for shown in ("pretrain", "finetune", "steps", "samples/s", "test figures", "best baseline", "sample requests",
                  "/v1/credit-risk", "/v1/customer-service", "index.md", "http://127.0.0.1:", "finmm tune",
                  "finmm submit", "cluster/recipes/"):
        assert shown in terminal, shown
    log = log_file(tmp_path)
    text = log.read_text()
    assert str(log) in terminal
    assert "[finmm] step" in text and "pid=" in text  # the workers' own lines, forwarded by Ray
    assert "Failed to query Ray Train Controller actor state" not in text  # the cleaner is not started at all
    print(f"log file {log}: {log.stat().st_size} bytes, {len(text.splitlines())} lines")

    # a second run skips the completed stages and serves again
    log.unlink()
    again = demo_cli(tmp_path, resolve_data_root(None), port, timeout=600)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert again.stdout.count("complete from an earlier run, skipped") == 4, again.stdout

