"""FinMMForTask: the backbone plus one or more named task heads on the pooled [CLS] state."""

from __future__ import annotations

import torch
import torch.nn as nn

from .config import FinMMConfig
from .heads import build_head
from .modeling import FinMMModel, FinMMPreTrainedModel


class FinMMForTask(FinMMPreTrainedModel):
    """Heads come from `config.heads` (name -> kwargs), so a saved folder rebuilds them."""

    def __init__(self, config: FinMMConfig):
        super().__init__(config)
        if not config.heads:
            raise ValueError("FinMMForTask needs at least one head in config.heads, e.g. {'credit_risk': {}}")
        d = config.encoder.hidden_size
        self.finmm = FinMMModel(config)
        self.heads = nn.ModuleDict({name: build_head(name, d, **kw) for name, kw in config.heads.items()})
        self.post_init()

    def forward(self, batch: dict[str, dict[str, torch.Tensor]], labels: dict[str, torch.Tensor] | None = None) -> dict:
        """Returns {head: {"logits", "probs", ...}, "pooled": (B, D)} and, when labels (head -> (B,)) are given,
        "losses": {head: scalar} and "loss": their sum."""
        pooled = self.finmm(batch).pooled  # (B, D)
        result: dict = {"pooled": pooled}
        for name, head in self.heads.items():
            result[name] = head(pooled)
        if labels:
            losses = {name: self.heads[name].loss(result[name], y) for name, y in labels.items()}
            result["losses"] = losses
            result["loss"] = sum(losses.values())
        return result

    @classmethod
    def from_backbone(cls, backbone: FinMMModel, heads: dict[str, dict]) -> FinMMForTask:
        """Fine-tuning start: copy a (pre)trained backbone and attach fresh heads."""
        config = FinMMConfig.from_dict({**backbone.config.to_dict(), "heads": heads})
        model = cls(config)
        model.finmm.load_state_dict(backbone.state_dict())
        return model
