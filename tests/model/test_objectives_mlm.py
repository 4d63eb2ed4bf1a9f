import math

import torch

from model.objectives.mlm import MLMHead, mask_tokens, mlm_loss


def test_mask_tokens_rates_and_specials():
    g = torch.Generator().manual_seed(0)
    B, T, V = 64, 128, 30600
    ids = torch.randint(1000, 30000, (B, T), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    am = torch.ones(B, T, dtype=torch.long)
    am[:, 100:] = 0
    masked, labels = mask_tokens(ids, am, V, 0.15, generator=g)
    sel = labels != -100
    assert not sel[:, 0].any() and not sel[:, 100:].any()  # no specials, no padding
    assert torch.equal(labels[sel], ids[sel]) and torch.equal(masked[~sel], ids[~sel])
    rate = sel.sum().item() / (B * 99)
    assert abs(rate - 0.15) < 0.01
    n = sel.sum().item()
    frac_mask = (masked[sel] == 103).sum().item() / n
    frac_same = (masked[sel] == ids[sel]).sum().item() / n
    assert abs(frac_mask - 0.8) < 0.03 and abs(frac_same - 0.1) < 0.03
    # same generator seed -> same masking
    again = mask_tokens(ids, am, V, 0.15, generator=torch.Generator().manual_seed(0).manual_seed(0))
    assert again[0].shape == masked.shape


def test_mask_tokens_deterministic_with_generator():
    ids = torch.randint(1000, 2000, (4, 20))
    am = torch.ones_like(ids)
    a = mask_tokens(ids, am, 30522, generator=torch.Generator().manual_seed(5))
    b = mask_tokens(ids, am, 30522, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_mlm_loss_by_hand():
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, 5.0]]])  # (1, 3, 2)
    labels = torch.tensor([[-100, 0, 1]])
    # position 1: p(0) = 3/4 ; position 2: p(1) = 1/2
    expected = -(math.log(0.75) + math.log(0.5)) / 2
    assert abs(mlm_loss(logits, labels).item() - expected) < 1e-6


def test_mlm_head_is_tied_to_embeddings():
    head = MLMHead(8, 11)
    emb = torch.nn.Embedding(11, 8)
    h = torch.randn(5, 8)
    logits = head(h, emb.weight)
    assert logits.shape == (5, 11)
    logits.sum().backward()
    assert emb.weight.grad is not None and emb.weight.grad.abs().sum() > 0
