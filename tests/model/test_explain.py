import pytest
import torch

from model.dummy import dummy_batch
from model.explain import explain, merge_wordpieces, reason_codes
from model.task import FinMMForTask


@pytest.fixture
def model(config):
    return FinMMForTask(config).eval()


@pytest.mark.parametrize("head", ["credit_risk", "sentiment"])
def test_integrated_gradients_completeness(model, config, gen, head):
    """The documented tolerance: at 64 steps the attributions sum to logit(x) - logit(reference) within 2%."""
    b = dummy_batch(config, 4, generator=gen)
    e = explain(model, b, head, steps=64)
    diff = e.score - e.baseline_score
    torch.testing.assert_close(e.total(), diff, atol=1e-4 + 0.02 * diff.abs().max().item(), rtol=0.02)
    with torch.no_grad():
        out = model(b)[head]
    logit = out["logits"] if out["logits"].dim() == 1 else out["logits"].gather(1, e.target[:, None]).squeeze(1)
    prob = out["probs"] if out["probs"].dim() == 1 else out["probs"].gather(1, e.target[:, None]).squeeze(1)
    torch.testing.assert_close(e.score, logit, atol=1e-5, rtol=1e-5)  # the explained score is the logit
    torch.testing.assert_close(e.probability, prob, atol=1e-5, rtol=1e-5)


def _reference_rows(config, n: int) -> dict:
    """n tabular rows of the reference applicant: train medians and modes, every feature present."""
    tab = config.tabular
    return {
        "numeric": torch.tensor([tab.numeric_reference] * n),
        "numeric_missing": torch.zeros(n, len(tab.numeric_features), dtype=torch.bool),
        "categorical": torch.tensor([tab.categorical_reference] * n),
        "feature_mask": torch.ones(n, tab.num_features, dtype=torch.bool),
        "present": torch.ones(n, dtype=torch.bool),
    }


def test_reference_applicant_gets_zero_attributions(model, config):
    """An applicant at the train medians and modes is the baseline itself: every attribution is exactly 0."""
    e = explain(model, {"tabular": _reference_rows(config, 2)}, "credit_risk", steps=16)
    assert torch.equal(e.tabular, torch.zeros_like(e.tabular))
    torch.testing.assert_close(e.score, e.baseline_score)


def test_tabular_completeness_against_the_reference(model, config, gen):
    """Tabular rows alone: attributions sum to logit(applicant) - logit(reference applicant)."""
    b = dummy_batch(config, 6, modalities=("tabular",), generator=gen, ragged=False)
    e = explain(model, b, "credit_risk", steps=64)
    with torch.no_grad():
        ref_logit = model({"tabular": _reference_rows(config, 6)})["credit_risk"]["logits"]
    torch.testing.assert_close(e.baseline_score, ref_logit, atol=1e-5, rtol=1e-5)
    diff = e.score - ref_logit
    torch.testing.assert_close(e.tabular.sum(1), diff, atol=1e-4 + 0.02 * diff.abs().max().item(), rtol=0.02)


def test_grouping_shapes_and_absent_samples(model, config, gen):
    b = dummy_batch(config, 3, generator=gen)
    e = explain(model, b, "credit_risk", method="grad_x_input")
    assert e.tabular.shape == (3, 5) and e.image.shape == (3, 2, 2) and e.series.shape == (3, 10)
    assert e.tabular[0].abs().sum() == 0 and e.image[0].abs().sum() == 0  # sample 0 has no tabular / image
    assert (e.series[~b["series"]["mask"]] == 0).all()  # padded days get nothing
    assert e.tokens["text"][-1].abs().sum() == 0  # last sample has no text


def test_words_merge_wordpieces():
    words = merge_wordpieces(["[CLS]", "the", "bank", "##rupt", "##cy", "[SEP]"], [9.0, 1.0, 0.5, 0.25, 0.25, 9.0])
    assert words == [("the", 1.0), ("bankruptcy", 1.0)]


def test_words_from_explanation(model, config, gen):
    b = dummy_batch(config, 2, modalities=("text",), generator=gen, ragged=False, text_len=5)
    toks = [["[CLS]", "net", "loss", "##es", "[SEP]"]] * 2
    e = explain(model, b, "sentiment", method="grad_x_input", token_strings=toks)
    assert [w for w, _ in e.words[0]] == ["net", "losses"]
    t = e.tokens["text"][0]
    assert abs(e.words[0][1][1] - (t[2] + t[3]).item()) < 1e-6


def test_reason_codes_are_positive_named_features(model, config, gen):
    b = dummy_batch(config, 4, modalities=("tabular",), generator=gen)
    e = explain(model, b, "credit_risk", steps=8)
    codes = reason_codes(e, k=2)
    for i, row in enumerate(codes[1:], start=1):
        assert len(row) <= 2 and all(c["attribution"] > 0 for c in row)
        assert all(c["feature"] in config.tabular.feature_names for c in row)
        if row:
            assert row[0]["attribution"] == pytest.approx(e.tabular[i].max().item())
    assert codes[0] == []  # no tabular data for sample 0


def test_reason_codes_name_only_the_rows_own_data_set(gen):
    from model import FinMMForTask
    from model.dummy import dummy_batch, tiny_config

    config = tiny_config(heads={"credit_risk": {}}, tabular={
        "numeric_features": ["lending_club.num__int_rate", "lending_club.num__dti", "german_credit.num__amount"],
        "categorical_features": ["lending_club.cat__grade", "german_credit.cat__telephone"],
        "categorical_cardinalities": [5, 3], "numeric_bins": [], "numeric_reference": [],
        "categorical_reference": []})
    model = FinMMForTask(config).eval()
    b = dummy_batch(config, 6, modalities=("tabular",), generator=gen)
    own_features = torch.tensor([n.startswith("lending_club.") for n in config.tabular.feature_names])
    b["tabular"]["feature_mask"] = own_features.expand(6, -1).clone()  # Lending Club rows
    e = explain(model, b, "credit_risk", steps=8)
    assert (e.tabular[:, ~own_features] == 0).all()  # a foreign feature is never attended, so never a reason
    every = reason_codes(e, k=5)
    own = reason_codes(e, k=5, dataset="lending_club")
    assert any(row for row in own)
    for row_all, row_own in zip(every, own, strict=True):
        assert all(c["feature"].startswith("lending_club.") for c in row_own)
        assert row_own == row_all[: len(row_own)]
