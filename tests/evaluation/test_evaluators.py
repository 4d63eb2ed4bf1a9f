"""Evaluators against metrics computed by hand on tiny hand-made inputs."""

import numpy as np
import pandas as pd
import pytest

from evaluation import evaluators as ev


def _rows(ids, splits, labels, **extra):
    return pd.DataFrame({"id": ids, "split": splits, "label": labels, **extra})


def test_credit_figures_by_hand():
    # labels 0 0 1 1, scores .1 .4 .35 .8: of the 4 (pos, neg) pairs, 3 are ordered right -> AUC 0.75.
    # Thresholds: at .8 TPR .5 FPR 0; at .35 TPR 1 FPR .5 -> KS = max(.5, .5) = 0.5.
    # Brier = (.01 + .16 + .4225 + .04) / 4 = 0.158125.
    y, p = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    f = ev.credit_figures(y, p)
    assert f["auc"] == pytest.approx(0.75)
    assert f["ks"] == pytest.approx(0.5)
    assert f["brier"] == pytest.approx(0.158125)
    # ECE, 10 equal-width bins, one score in each of bins [.1,.2) [.3,.4) [.4,.5) [.8,.9):
    # .25 * (|0-.1| + |1-.35| + |0-.4| + |1-.8|) = .3375
    assert f["ece"] == pytest.approx(0.25 * (0.1 + 0.65 + 0.4 + 0.2))
    bins = {round(b["lo"], 1): b for b in f["reliability"]}
    assert sorted(bins) == [0.1, 0.3, 0.4, 0.8]
    assert bins[0.3]["count"] == 1 and bins[0.3]["mean_predicted"] == pytest.approx(0.35)
    assert bins[0.3]["observed_rate"] == pytest.approx(1.0)


def test_german_mean_and_std_over_folds():
    rows = _rows([f"r{i}" for i in range(8)], ["fold0"] * 4 + ["fold1"] * 4, [0, 0, 1, 1, 0, 1, 0, 1])
    pred = pd.Series([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.3, 0.7], index=rows["id"])
    out = ev.evaluate_german_credit(rows, pred)
    # fold0 AUC 0.75 (above); fold1 perfectly ordered -> 1.0. mean .875, population std .125
    assert out["folds"]["fold0"]["auc"] == pytest.approx(0.75)
    assert out["folds"]["fold1"]["auc"] == pytest.approx(1.0)
    assert out["auc_mean"] == pytest.approx(0.875)
    assert out["auc_std"] == pytest.approx(0.125)
    assert out["ks_mean"] == pytest.approx((0.5 + 1.0) / 2)
    brier1 = np.mean((np.array([0.2, 0.9, 0.3, 0.7]) - np.array([0, 1, 0, 1])) ** 2)
    assert out["brier_mean"] == pytest.approx((0.158125 + brier1) / 2)
    assert "reliability" in out["pooled"]


def test_missing_prediction_is_an_error():
    rows = _rows(["a", "b"], ["test", "test"], [0, 1])
    with pytest.raises(ev.MissingPredictions):
        ev.evaluate_lending_club(rows, pd.Series([0.3], index=["a"]), None)


def test_phrasebank_all_agree_subset():
    rows = _rows(["a", "b", "c", "d", "e"], ["test"] * 4 + ["train"], [0, 1, 2, 2, 1],
                 all_agree=[True, True, False, False, True])
    probs = pd.DataFrame([[.8, .1, .1], [.1, .8, .1], [.1, .8, .1], [.1, .1, .8]], index=["a", "b", "c", "d"])
    out = ev.evaluate_phrasebank(rows, probs)
    # test: predictions 0 1 1 2 vs 0 1 2 2 -> 3/4; F1 per class: c0 1, c1 2/3, c2 2/3 -> macro 7/9
    assert out["test"]["accuracy"] == pytest.approx(0.75)
    assert out["test"]["macro_f1"] == pytest.approx(7 / 9)
    assert out["all_agree"]["accuracy"] == pytest.approx(1.0) and out["all_agree"]["n"] == 2
    assert out["test"]["confusion"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_finfe_unseen_subset():
    rows = _rows(["x", "y", "z"], ["test"] * 3, [0, 1, 2], seen_in_train=[True, False, False])
    probs = pd.DataFrame([[0, 1, 0], [0, 1, 0], [1, 0, 0]], index=["x", "y", "z"], dtype=float)
    out = ev.evaluate_finfe(rows, probs)
    assert out["test"]["accuracy"] == pytest.approx(1 / 3)
    assert out["unseen"]["n"] == 2 and out["unseen"]["accuracy"] == pytest.approx(0.5)


def test_stocknet_accuracy_and_mcc_by_hand():
    rows = _rows(list("abcdef"), ["test"] * 6, [1, 1, 1, 0, 0, 0])
    pred = pd.Series([0.9, 0.8, 0.2, 0.1, 0.3, 0.7], index=list("abcdef"))  # TP 2, FN 1, TN 2, FP 1
    out = ev.evaluate_stocknet(rows, pred)
    tp = tn = 2
    fp = fn = 1
    mcc = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert out["test"]["accuracy"] == pytest.approx(4 / 6)
    assert out["test"]["mcc"] == pytest.approx(mcc)
    assert out["n_test"] == 6


def test_banking77_macro_f1_and_headline():
    rows = _rows(["a", "b", "c", "d"], ["test"] * 4, [0, 1, 2, 2])
    probs = pd.DataFrame(np.eye(3)[[0, 1, 2, 1]], index=["a", "b", "c", "d"])
    out = ev.evaluate_banking77(rows, probs)
    # class F1: 1, 2/3 (P .5 R 1), 2/3 (P 1 R .5)
    assert out["test"]["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert ev.headline("banking77", out) == {"accuracy": 0.75, "macro_f1": round(7 / 9, 4)}  # rounded to 4
