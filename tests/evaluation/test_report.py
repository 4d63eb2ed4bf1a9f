"""Report writing produces the JSON, Markdown and PNG files, and `finmm evaluate` works without a model."""

import json

import numpy as np
from PIL import Image
from rich.console import Console

from evaluation import evaluators as ev
from evaluation import plots
from evaluation.baselines import german_logistic
from evaluation.data import load_rows
from evaluation.report import write_index, write_task_report


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
    from evaluation.report import findings

    lines = findings("banking77", baselines, finmm)
    assert any(line.startswith("finmm LOSES on accuracy") for line in lines)


def test_plots(tmp_path):
    p = plots.line_plot(tmp_path / "roc.png", [("a", [0, 0.5, 1], [0, 0.8, 1])], "ROC", "fpr", "tpr")
    r = plots.line_plot(tmp_path / "rel.png", [("a", [0.1, 0.5], [0.2, 0.4])], "rel", "p", "rate", markers=True,
                        counts=[[(0.0, 0.1, 40), (0.4, 0.5, 3)]])
    b = plots.bar_plot(tmp_path / "bars.png", ["x", "a much longer model name than fits under a bar"],
                       [0.05, -0.01], "MCC", "MCC", baseline=0.0)
    c = plots.confusion_plot(tmp_path / "cm.png", [[5, 1], [2, 7]], ["fall", "rise"], "cm")
    for plot, panels in ((p, 1), (r, 2), (b, 1), (c, 1)):  # the confusion plot's colour bar is not a panel
        assert plot.panels == panels
        with Image.open(plot) as img:
            assert img.format == "PNG" and img.size == (plot.width, plot.height)


def _credit_figures(seed: int, sep: float) -> dict:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 400)
    return ev.credit_figures(y, 1 / (1 + np.exp(-(rng.normal(0, 1, 400) + sep * y))))


def test_every_report_png_matches_what_the_report_says(tmp_path):
    """Each PNG opens, and has the pixel size and the number of panels that the report's JSON (and the
    Markdown's caption) say it has: ROC 1, reliability 2 (curve + rows per bin), confusion 1, bars 1."""
    def entry(dataset, baselines, finmm):
        return {"baselines": [{"model": m, "figures": f, "headline": ev.headline(dataset, f), "wall_s": 1.0}
                              for m, f in baselines],
                "finmm": {"status": "measured", "figures": finmm, "headline": ev.headline(dataset, finmm), **(
                    {"ablations": {"without_text": {"mcc": 0.01}, "without_series": {"mcc": -0.02}}}
                    if dataset == "stocknet" else {})}}

    def classes(acc, confusion):
        return {"test": {"accuracy": acc, "macro_f1": acc - 0.1, "mcc": acc - 0.5, "confusion": confusion},
                "all_agree": {"accuracy": acc}, "n_test": sum(map(sum, confusion))}

    datasets = {
        "lending_club": entry("lending_club", [("logistic regression (tabular, one-hot + standardise)",
                                                {"tabular": _credit_figures(0, 1.0)})],
                              {"tabular_text": _credit_figures(1, 0.2)}),
        "financial_phrasebank": entry("financial_phrasebank", [("TF-IDF + logistic regression",
                                                                classes(0.79, [[5, 3, 1], [1, 50, 2], [2, 6, 20]]))],
                                      classes(0.63, [[0, 9, 0], [0, 53, 0], [0, 27, 1]])),
        "stocknet": entry("stocknet", [("momentum (sign of the t-1 return)", classes(0.51, [[40, 41], [38, 45]]))],
                          classes(0.52, [[42, 39], [37, 46]])),
    }
    json_path, md_path = write_task_report("mixed", datasets, tmp_path, {"command": "test", "git_commit": None})
    report, md = json.loads(json_path.read_text()), md_path.read_text()
    expected = {"roc": 1, "calibration": 2, "confusion": 1, "models": 1, "ablation": 1}
    seen = set()
    for name, data in report["datasets"].items():
        assert [p["file"] for p in data["plot_files"]] == data["plots"]
        for plot in data["plot_files"]:
            kind = plot["file"].removeprefix(f"mixed_{name}_").removesuffix(".png")
            seen.add(kind)
            assert plot["panels"] == expected[kind], plot
            with Image.open(tmp_path / plot["file"]) as img:
                assert img.format == "PNG"
                assert img.size == (plot["width_px"], plot["height_px"]), plot
            assert f"{plot['file']}: {plot['width_px']}x{plot['height_px']} px, {plot['panels']} panel" in md
    assert seen == set(expected)


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
