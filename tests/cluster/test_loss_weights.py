"""finetune.loss_weights: validated in the config, carried on each task stream, applied in the step loss."""

from __future__ import annotations

import pytest
import torch

from cluster.streams import StreamSpec
from cluster.train_loop import _forward
from finmm.config import ConfigError, load_settings
from model import FinMMForTask
from model.dummy import dummy_batch, tiny_config


def test_loss_weights_are_validated():
    settings = load_settings(None, ["finetune.tasks=[sentiment,customer_service]",
                                    "finetune.loss_weights.sentiment=0.5"])
    assert settings.finetune.loss_weights == {"sentiment": 0.5}
    with pytest.raises(ConfigError, match=r"finetune\.loss_weights\.sentimnt.*command-line override.*'sentiment'"):
        load_settings(None, ["finetune.loss_weights.sentimnt=0.5"])
    with pytest.raises(ConfigError, match="finite number >= 0"):
        load_settings(None, ["finetune.loss_weights.sentiment=-1"])
    with pytest.raises(ConfigError, match="weight 0"):
        load_settings(None, ["finetune.tasks=[sentiment]", "finetune.loss_weights.sentiment=0"])


def test_step_loss_is_weighted_and_the_logged_task_loss_is_not():
    torch.manual_seed(0)
    model = FinMMForTask(tiny_config(heads={"sentiment": {}})).eval()
    batch = dummy_batch(model.config, 4, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 1])
    spec = type("Spec", (), {"kind": "finetune"})()
    outs = {}
    for weight in (1.0, 0.25):
        stream = StreamSpec("sentiment", ["financial_phrasebank"], [], head="sentiment", loss_weight=weight)
        with torch.no_grad():
            outs[weight] = _forward(model, spec, stream, {**batch, "labels": labels}, torch.Generator())
    assert outs[1.0]["sentiment"].item() == pytest.approx(outs[0.25]["sentiment"].item())
    assert outs[0.25]["loss"].item() == pytest.approx(0.25 * outs[1.0]["loss"].item())
    assert outs[1.0]["loss"].item() > 0
