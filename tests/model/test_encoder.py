import itertools

import pytest
import torch

from model.config import MODALITIES
from model.dummy import dummy_batch
from model.modeling import FinMMModel

SUBSETS = [s for r in range(1, 5) for s in itertools.combinations(MODALITIES, r)]


@pytest.fixture
def model(config):
    return FinMMModel(config).eval()


@pytest.mark.parametrize("mods", SUBSETS, ids=["+".join(s) for s in SUBSETS])
def test_every_subset_of_modalities(model, config, gen, mods):
    b = dummy_batch(config, 3, modalities=mods, generator=gen)
    out = model(b)
    T = sum(s.stop - s.start for s in out.segments.values())
    assert out.hidden_states.shape == (3, T, 64) and out.mask.shape == (3, T) and out.pooled.shape == (3, 64)
    expected = {"text": 11, "image": 4, "tabular": 5, "series": 10}
    assert {m: s.stop - s.start for m, s in out.segments.items() if m != "cls"} == {m: expected[m] for m in mods}
    assert out.mask[:, 0].all() and torch.isfinite(out.hidden_states).all()


def _pad_more(batch, extra_text=5, extra_days=4):
    b = {k: dict(v) for k, v in batch.items()}
    B = b["text"]["input_ids"].shape[0]
    junk = torch.randint(1000, 2000, (B, extra_text))
    b["text"]["input_ids"] = torch.cat([b["text"]["input_ids"], junk], 1)
    b["text"]["attention_mask"] = torch.cat(
        [b["text"]["attention_mask"], torch.zeros(B, extra_text, dtype=torch.long)], 1
    )
    s = b["series"]
    b["series"]["values"] = torch.cat([torch.randn(B, extra_days, 5), s["values"]], 1)
    b["series"]["mask"] = torch.cat([torch.zeros(B, extra_days, dtype=torch.bool), s["mask"]], 1)
    return b


def test_padding_never_changes_real_tokens(model, config, gen):
    b = dummy_batch(config, 4, generator=gen)
    with torch.no_grad():
        ref = model(b)
        # garbage under existing padding / absent modalities must not matter either
        b2 = {k: dict(v) for k, v in b.items()}
        b2["image"]["pixel_values"] = torch.where(
            b["image"]["present"][:, None, None, None], b["image"]["pixel_values"], 99.0
        )
        out = model(b2)
    torch.testing.assert_close(out.hidden_states[out.mask], ref.hidden_states[ref.mask])
    torch.testing.assert_close(out.pooled, ref.pooled)


def test_extra_padding_keeps_outputs(config, gen):
    config.series.max_len = 64
    model = FinMMModel(config).eval()
    model.embedders["series"].position_embeddings.data.zero_()  # positions shift when days are prepended
    b = dummy_batch(config, 4, generator=gen)
    with torch.no_grad():
        ref, out = model(b), model(_pad_more(b))
    t_ref, t_out = ref.segments["text"], out.segments["text"]
    m = ref.mask[:, t_ref]
    torch.testing.assert_close(
        out.hidden_states[:, t_out][:, : m.shape[1]][m], ref.hidden_states[:, t_ref][m], atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(out.pooled, ref.pooled, atol=1e-5, rtol=1e-5)


def test_sample_without_text_uses_learned_cls(model, config, gen):
    b = dummy_batch(config, 3, modalities=("text", "tabular"), generator=gen)
    assert b["text"]["attention_mask"][-1].sum() == 0
    with torch.no_grad():
        out = model(b)
        alone = model({"tabular": {k: v[-1:] for k, v in b["tabular"].items()}})
    torch.testing.assert_close(out.pooled[-1:], alone.pooled, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("placement", ["post", "pre"])
def test_gradients_reach_every_embedder(config, gen, placement):
    config.encoder.norm_placement = placement
    model = FinMMModel(config)
    out = model(dummy_batch(config, 4, generator=gen))
    (out.hidden_states[out.mask].pow(2).mean() + out.pooled.sum()).backward()
    for m in MODALITIES:
        grads = [p.grad for p in model.embedders[m].parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), m
    assert model.cls_embedding.grad.abs().sum() > 0  # last sample has no text


def test_deterministic_under_seed(config, gen):
    def run():
        torch.manual_seed(7)
        m = FinMMModel(config)
        return m(dummy_batch(config, 2, generator=torch.Generator().manual_seed(3))).hidden_states

    assert torch.equal(run(), run())
