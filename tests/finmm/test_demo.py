"""`finmm demo --quick` end to end: every stage leaves its outputs and every endpoint answers."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from rich.console import Console

from finmm.config import load_settings
from finmm.demo import run_demo

pytestmark = pytest.mark.timeout(1200)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_quick_demo_runs_every_stage_and_every_endpoint_answers(ray_cluster, tmp_path):
    port = free_port()
    settings = load_settings(None, [f"serve.http.port={port}"])
    console = Console(record=True, width=160)
    root = tmp_path / "demo"
    code = run_demo(settings, quick=True, console=console, root=root)
    output = console.export_text()
    assert code == 0, output[-4000:]
    for stage in ("prepare", "pretrain", "finetune", "evaluate"):
        marker = json.loads((root / "stages" / f"{stage}.json").read_text())
        assert all(Path(p).exists() for p in marker["outputs"]), stage
    assert (root / "finetune" / "latest" / "model.safetensors").exists()
    for endpoint in ("/v1/credit-risk", "/v1/stock-movement", "/v1/sentiment", "/v1/customer-service"):
        assert endpoint in output
    assert "Error" not in output.split("sample requests")[-1]

    # a second run skips the completed stages
    console2 = Console(record=True, width=160)
    assert run_demo(settings, quick=True, console=console2, root=root) == 0
    assert "complete from an earlier run, skipped" in console2.export_text()
