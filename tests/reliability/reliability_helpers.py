"""Helpers shared by the reliability tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIGURES_ENV = "FINMM_RELIABILITY_FIGURES"
"""When set, tests append their measured figures (JSON lines) to this file; bench/reliability_report.py reads it."""


def load_file(path: Path, name: str):
    """Import a file that is not in a package (tests/serve/conftest.py, bench/load.py)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def bench_load():
    return load_file(REPO / "bench" / "load.py", "_finmm_bench_load")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def record(name: str, **figures) -> None:
    """Leave a figure for the report (no-op unless $FINMM_RELIABILITY_FIGURES names a file)."""
    path = os.environ.get(FIGURES_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"name": name, **figures}) + "\n")
