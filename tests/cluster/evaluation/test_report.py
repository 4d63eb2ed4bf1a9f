"""Report writing produces the JSON, Markdown and PNG files, and `finmm evaluate` works without a model."""

import json

from PIL import Image
from rich.console import Console

from cluster.evaluation import plots
from cluster.evaluation.baselines import german_logistic
from cluster.evaluation.data import load_rows
from cluster.evaluation.report import write_index, write_task_report


def test_write_task_report_and_index(tmp_path, data_root):
    rows = load_rows("german_credit", data_root)
    baselines = [german_logistic(rows).to_dict()]
    entry = {"baselines": baselines, "finmm": {"status": "not measured yet"}}
    json_path, md_path = write_task_report("credit_risk", {"german_credit": entry}, tmp_path,
                                           {"command": "test", "git_commit": None, "quick": False})
    report = json.loads(json_path.read_text())
    assert report["datasets"]["german_credit"]["published"]["auc_range"] == [0.77, 0.80]
    assert any("not measured yet" in f for f in report["datasets"]["german_credit"]["findings"])
    md = md_path.read_text()
    assert "| **finmm** | not measured yet |" in md
    for name in report["datasets"]["german_credit"]["plots"]:
        with Image.open(tmp_path / name) as img:
            assert img.format == "PNG" and img.size[0] >= 300
    assert {"credit_risk_german_credit_roc.png", "credit_risk_german_credit_calibration.png"} <= set(
        report["datasets"]["german_credit"]["plots"])
    index = write_index(tmp_path).read_text()
    assert "german_credit" in index and "not measured yet" in index


def test_finmm_loss_is_reported(tmp_path):
    baselines = [{"model": "LR", "headline": {"accuracy": 0.8}, "figures": {}, "wall_s": 1.0}]
    finmm = {"status": "measured", "headline": {"accuracy": 0.7}, "figures": {}}
    from cluster.evaluation.report import findings

    lines = findings("banking77", baselines, finmm)
    assert any(line.startswith("finmm LOSES on accuracy") for line in lines)


def test_plots(tmp_path):
    p = plots.line_plot(tmp_path / "roc.png", [("a", [0, 0.5, 1], [0, 0.8, 1])], "ROC", "fpr", "tpr")
    b = plots.bar_plot(tmp_path / "bars.png", ["x", "y"], [0.05, -0.01], "MCC", "MCC", baseline=0.0)
    c = plots.confusion_plot(tmp_path / "cm.png", [[5, 1], [2, 7]], ["fall", "rise"], "cm")
    for path in (p, b, c):
        assert Image.open(path).format == "PNG"


def test_run_evaluate_quick_without_bundle(tmp_path, monkeypatch, data_root):
    from finmm.config import load_settings
    from finmm.evaluate_command import run_evaluate, run_report

    settings = load_settings(None, [f"data.root={data_root}", f"finetune.output_dir={tmp_path / 'none'}",
                                    f"data.output_dir={tmp_path / 'data'}"])
    monkeypatch.chdir(tmp_path)
    console = Console(file=open(tmp_path / "log.txt", "w"))
    assert run_evaluate(settings, "sentiment", console, quick=True) == 0
    report = json.loads((tmp_path / "reports/sentiment.json").read_text())
    assert report["quick"] is True
    assert set(report["datasets"]) == {"financial_phrasebank", "fincuge_finfe"}
    assert report["datasets"]["fincuge_finfe"]["finmm"]["status"].startswith("not trained yet")
    assert report["datasets"]["financial_phrasebank"]["checksums"]["source_files"][0]["sha256"]
    assert "Quick run" in (tmp_path / "reports/sentiment.md").read_text()
    assert run_report(settings, console) == 0
    assert (tmp_path / "reports/index.md").exists()
