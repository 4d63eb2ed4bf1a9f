"""The `finmm` console script, run as a real subprocess."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "finmm.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_config_show_prints_values_and_docs():
    result = run_cli("config", "show", "data.text.max_length=96")
    assert result.returncode == 0, result.stderr
    assert "data.text.max_length = 96" in result.stdout
    assert "truncated to this many tokens" in result.stdout


def test_config_validate_accepts_the_shipped_file():
    result = run_cli("config", "validate", str(REPO / "ray_config.yaml"))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_config_validate_exits_2_with_a_precise_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("serve:\n  htp:\n    port: 80\n")
    result = run_cli("config", "validate", str(bad))
    assert result.returncode == 2
    assert "serve.htp" in result.stderr and "did you mean 'serve.http'" in result.stderr


def test_bad_override_on_a_command_exits_2():
    result = run_cli("prepare", "data.text.max_lenght=12")
    assert result.returncode == 2
    assert "did you mean 'data.text.max_length'" in result.stderr
