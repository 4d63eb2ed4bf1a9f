import math

import pytest
import torch

from model.dummy import dummy_batch
from model.heads import HEADS, TaskHead, build_head, register_head
from model.task import FinMMForTask


def test_builtin_heads_registered():
    assert {"credit_risk", "stock_movement", "sentiment", "intent"} <= set(HEADS)


def test_task_model_outputs_and_losses(config, gen):
    model = FinMMForTask(config)
    b = dummy_batch(config, 4, generator=gen)
    labels = {
        "credit_risk": torch.tensor([0.0, 1.0, 1.0, 0.0]),
        "sentiment": torch.tensor([0, 1, 2, 1]),
        "intent": torch.tensor([4, 0, 1, 3]),
    }
    out = model(b, labels=labels)
    assert (
        out["credit_risk"]["logits"].shape == (4,)
        and ((0 < out["credit_risk"]["probs"]) & (out["credit_risk"]["probs"] < 1)).all()
    )
    assert out["stock_movement"]["probs"].shape == (4, 2) and out["sentiment"]["probs"].shape == (4, 3)
    torch.testing.assert_close(out["sentiment"]["probs"].sum(-1), torch.ones(4))
    assert out["intent"]["logits"].shape == (4, 5)
    torch.testing.assert_close(out["intent"]["embedding"].norm(dim=-1), torch.ones(4))
    assert set(out["losses"]) == set(labels)
    torch.testing.assert_close(out["loss"], sum(out["losses"].values()))
    out["loss"].backward()
    assert model.heads["stock_movement"].classifier.weight.grad is None  # no label, no gradient


def test_credit_risk_loss_by_hand():
    head = build_head("credit_risk", 4, dropout=0.0)
    out = {"logits": torch.tensor([0.0, math.log(3.0)])}
    # BCE: label 1 at p=0.5 -> log 2 ; label 0 at p=0.75 -> -log(0.25)
    expected = (math.log(2.0) - math.log(0.25)) / 2
    assert abs(head.loss(out, torch.tensor([1.0, 0.0])).item() - expected) < 1e-6


def test_register_custom_head(config, gen):
    @register_head("volatility_test")
    class VolHead(TaskHead):
        def __init__(self, hidden_size, horizon=1):
            super().__init__()
            self.proj = torch.nn.Linear(hidden_size, horizon)

        def forward(self, pooled):
            y = self.proj(pooled)
            return {"logits": y, "probs": y}

        def loss(self, out, labels):
            return torch.nn.functional.mse_loss(out["logits"], labels)

    try:
        config.heads = {"volatility_test": {"horizon": 3}}
        model = FinMMForTask(config)
        out = model(dummy_batch(config, 2, generator=gen), labels={"volatility_test": torch.zeros(2, 3)})
        assert out["volatility_test"]["logits"].shape == (2, 3) and out["loss"].item() >= 0
        with pytest.raises(ValueError):
            register_head("volatility_test")(type("Other", (TaskHead,), {}))
    finally:
        HEADS.pop("volatility_test")


def test_unknown_head_raises(config):
    config.heads = {"nope": {}}
    with pytest.raises(KeyError, match="unknown task head"):
        FinMMForTask(config)
