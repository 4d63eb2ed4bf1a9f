import pytest
import torch

from model.config import MODALITIES
from model.dummy import dummy_batch
from model.pretraining import FinMMForPretraining


@pytest.fixture
def model(config):
    config.objectives.mfm_probability = 0.5
    return FinMMForPretraining(config)


def test_all_terms_and_weighted_total(model, config, gen):
    config.objectives.mlm_weight, config.objectives.mfm_weight = 2.0, 0.5
    out = model(dummy_batch(config, 6, generator=gen), generator=torch.Generator().manual_seed(0))
    assert set(out) == {"mlm", "contrastive", "mfm_tabular", "mfm_series", "loss"}
    expected = 2.0 * out["mlm"] + out["contrastive"] + 0.5 * (out["mfm_tabular"] + out["mfm_series"])
    torch.testing.assert_close(out["loss"], expected)
    out["loss"].backward()
    for m in MODALITIES:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.finmm.embedders[m].parameters()), m
    assert model.contrastive.logit_scale.grad is not None


@pytest.mark.parametrize(
    "mods,expected",
    [
        (("text",), {"mlm"}),
        (("image",), set()),
        (("tabular", "series"), {"mfm_tabular", "mfm_series"}),
        (("text", "image"), {"mlm", "contrastive"}),
    ],
)
def test_missing_modalities_skip_terms(model, config, gen, mods, expected):
    out = model(dummy_batch(config, 6, modalities=mods, generator=gen), generator=torch.Generator().manual_seed(0))
    assert set(out) - {"loss"} == expected
    out["loss"].backward()  # total stays differentiable even when empty


def test_precomputed_labels_are_used(model, config, gen):
    model.eval()
    b = dummy_batch(config, 4, modalities=("text",), generator=gen)
    labels = torch.full_like(b["text"]["input_ids"], -100)
    labels[0, 1] = b["text"]["input_ids"][0, 1]
    b["text"]["labels"] = labels
    out = model(b)
    h = model.finmm(b).hidden_states[0, 1]
    logits = model.mlm_head(h[None], model.finmm.word_embeddings.weight)
    torch.testing.assert_close(out["mlm"], torch.nn.functional.cross_entropy(logits, labels[0, 1:2]))


def test_logit_scale_initialised(model, config):
    assert abs(model.contrastive.logit_scale.item() - config.objectives.logit_scale_init) < 1e-6
