"""Learning curves from run folders: the validation points and losses of metrics.jsonl, as a PNG and a table."""

import json

import pytest
from PIL import Image

from evaluation.learning_curves import write


def _run(folder, values):
    folder.mkdir()
    rows = [{"step": s, "loss": 1.0 / s} for s in range(10, 70, 10)]
    rows += [{"step": 30 * (i + 1), "val/lending_club/auc": v} for i, v in enumerate(values)]
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return folder


def test_curves_of_two_runs(tmp_path):
    runs = {"with text": _run(tmp_path / "a", [0.61, 0.66]), "tabular only": _run(tmp_path / "b", [0.64, 0.65])}
    png = write(runs, "val/lending_club/auc", tmp_path / "out" / "lc", "Lending Club")
    assert Image.open(png).size[0] > 300
    table = (tmp_path / "out" / "lc.md").read_text()
    assert "| with text | 30: 0.6100, 60: 0.6600 |" in table and "tabular only" in table


def test_a_metric_no_run_logged_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no run logged"):
        write({"a": _run(tmp_path / "a", [0.6])}, "val/banking77/accuracy", tmp_path / "x", "t")
