import torch

from model.objectives.mfm import MFMHeads, mask_positions, mfm_series_loss, mfm_tabular_loss


def test_mask_positions_only_eligible():
    eligible = torch.zeros(50, 40, dtype=torch.bool)
    eligible[:, :20] = True
    chosen = mask_positions(eligible, 0.3, torch.Generator().manual_seed(0))
    assert not chosen[:, 20:].any()
    assert abs(chosen.float().sum().item() / 1000 - 0.3) < 0.05


def test_tabular_loss_by_hand():
    pred = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    target = torch.tensor([[0.0, 2.0], [3.0, 0.0]])
    nmask = torch.tensor([[True, False], [True, False]])
    # MSE over masked: ((1-0)^2 + (0-3)^2) / 2 = 5
    logits = [torch.log(torch.tensor([[0.5, 0.5], [0.25, 0.75]]))]
    cat_target = torch.tensor([[1], [1]])
    cmask = torch.tensor([[False], [True]])
    # CE over masked: -log(0.75)
    loss = mfm_tabular_loss(pred, target, nmask, logits, cat_target, cmask)
    assert abs(loss.item() - (5.0 - torch.log(torch.tensor(0.75)).item())) < 1e-5
    none = mfm_tabular_loss(pred, target, nmask & False, logits, cat_target, cmask & False)
    assert none is None


def test_series_loss_by_hand():
    pred = torch.zeros(1, 2, 2)
    target = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    real = torch.tensor([[[True, False], [True, True]]])
    chosen = torch.tensor([[True, False]])
    assert mfm_series_loss(pred, target, real, chosen).item() == 1.0  # only value 1.0 counts
    assert mfm_series_loss(pred, target, real, chosen & False) is None


def test_heads_split_categorical_classes():
    heads = MFMHeads(8, [3, 5], 10)
    num, logits = heads.tabular(torch.randn(2, 4, 8), torch.randn(2, 2, 8))
    assert num.shape == (2, 4) and [lg.shape for lg in logits] == [(2, 3), (2, 5)]
