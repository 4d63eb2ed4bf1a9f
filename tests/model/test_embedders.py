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


def test_tabular_numeric_token_is_piecewise_linear_or_missing(config):
    emb = TabularEmbedder(config)
    with torch.no_grad():
        for p in emb.parameters():
            p.normal_()
    tab = {
        "numeric": torch.tensor([[2.0, 0.0, 1.0]]),
        "numeric_missing": torch.tensor([[False, True, False]]),
        "categorical": torch.tensor([[4, 2]]),
        "feature_mask": torch.tensor([[True] * 5]),
        "present": torch.tensor([True]),
    }
    x, _ = emb(tab)
    f = emb.feature_embeddings
    value = emb.numeric(torch.tensor([[2.0, 0.0, 1.0]]))  # rtdl's piecewise-linear embedding over the bins
    torch.testing.assert_close(x[0, 0], value[0, 0] + f[0])
    torch.testing.assert_close(x[0, 1], emb.missing_embeddings[1] + f[1])  # missing: that feature's own token
    # categorical feature j uses its own rows: sector (5 values) at offset 0, region at offset 5
    torch.testing.assert_close(x[0, 3], emb.category_embeddings.weight[4] + f[3])
    torch.testing.assert_close(x[0, 4], emb.category_embeddings.weight[5 + 2] + f[4])


def test_piecewise_linear_embedding_is_not_affine_in_the_value(config):
    """Inside the bins the token bends at each edge: a heavy-tailed feature is not squeezed onto one line."""
    emb = TabularEmbedder(config)
    with torch.no_grad():
        for p in emb.parameters():
            p.normal_()
    v = torch.tensor([[-2.0, 0, 0], [0.5, 0, 0], [2.0, 0, 0]])  # three values across several bins
    y = emb.numeric(v)[:, 0]  # (3, D)
    straight = y[0] + (y[2] - y[0]) * (0.5 + 2.0) / 4.0  # the value at 0.5 if the map were affine
    assert (y[1] - straight).abs().max() > 1e-3


def test_tabular_mask_is_per_feature(config):
    """A row attends only to the features its feature_mask marks (its own data set's)."""
    emb = TabularEmbedder(config)
    tab = {
        "numeric": torch.zeros(2, 3),
        "numeric_missing": torch.zeros(2, 3, dtype=torch.bool),
        "categorical": torch.ones(2, 2, dtype=torch.long),
        "feature_mask": torch.tensor([[True, True, False, True, False], [False, False, True, False, True]]),
        "present": torch.tensor([True, True]),
    }
    _, m = emb(tab)
    assert torch.equal(m, tab["feature_mask"])


def test_patch_series_pads_and_masks():
    v = torch.arange(2 * 5 * 1, dtype=torch.float).view(2, 5, 1)
    mask = torch.tensor([[True] * 5, [False, False, False, True, True]])
    patches, pm = patch_series(v, mask, 2)
    assert patches.shape == (2, 3, 2)
    assert torch.equal(pm, torch.tensor([[True, True, True], [False, True, True]]))
    assert patches[0, 2].tolist() == [4.0, 0.0]  # tail padded
    assert patches[1, 1].tolist() == [0.0, 8.0]  # masked day zeroed
