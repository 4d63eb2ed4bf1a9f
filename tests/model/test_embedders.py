import torch

from model.dummy import dummy_batch
from model.embedders import ImageEmbedder, SeriesEmbedder, TabularEmbedder, TextEmbedder, patch_series


def test_shapes_and_masks(config, gen):
    b = dummy_batch(config, 4, generator=gen)
    x, m = TextEmbedder(config)(b["text"])
    assert x.shape == (4, 12, 64) and torch.equal(m, b["text"]["attention_mask"].bool())
    x, m = ImageEmbedder(config)(b["image"])
    assert x.shape == (4, 4, 64) and m.shape == (4, 4) and not m[0].any() and m[1:].all()
    x, m = TabularEmbedder(config)(b["tabular"])
    assert x.shape == (4, 5, 64) and not m[0].any() and m[1:].all()
    x, m = SeriesEmbedder(config)(b["series"])
    assert x.shape == (4, 10, 64) and torch.equal(m, b["series"]["mask"])


def test_tabular_numeric_token_is_affine_plus_missing(config):
    emb = TabularEmbedder(config)
    with torch.no_grad():
        for p in (emb.numeric_weight, emb.numeric_bias, emb.missing_embeddings, emb.feature_embeddings):
            p.normal_()
    tab = {
        "numeric": torch.tensor([[2.0, 0.0, 1.0]]),
        "numeric_missing": torch.tensor([[False, True, False]]),
        "categorical": torch.tensor([[4, 2]]),
        "present": torch.tensor([True]),
    }
    x, _ = emb(tab)
    f = emb.feature_embeddings
    torch.testing.assert_close(x[0, 0], 2.0 * emb.numeric_weight[0] + emb.numeric_bias[0] + f[0])
    torch.testing.assert_close(x[0, 1], emb.numeric_bias[1] + emb.missing_embeddings[1] + f[1])
    # categorical feature j uses its own rows: sector (5 values) at offset 0, region at offset 5
    torch.testing.assert_close(x[0, 3], emb.category_embeddings.weight[4] + f[3])
    torch.testing.assert_close(x[0, 4], emb.category_embeddings.weight[5 + 2] + f[4])


def test_patch_series_pads_and_masks():
    v = torch.arange(2 * 5 * 1, dtype=torch.float).view(2, 5, 1)
    mask = torch.tensor([[True] * 5, [False, False, False, True, True]])
    patches, pm = patch_series(v, mask, 2)
    assert patches.shape == (2, 3, 2)
    assert torch.equal(pm, torch.tensor([[True, True, True], [False, True, True]]))
    assert patches[0, 2].tolist() == [4.0, 0.0]  # tail padded
    assert patches[1, 1].tolist() == [0.0, 8.0]  # masked day zeroed
