"""Task heads on the pooled [CLS] state, registered by name so users can add their own.

A head maps pooled (B, D) -> dict with at least "logits" and "probs"; `loss(out, labels)` gives a scalar.

    @register_head("my_task")
    class MyHead(TaskHead): ...
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

HEADS: dict[str, type[TaskHead]] = {}
"""Registry: head name -> head class (constructed as cls(hidden_size, **config.heads[name]))."""


def register_head(name: str) -> Callable[[type[TaskHead]], type[TaskHead]]:
    def deco(cls: type[TaskHead]) -> type[TaskHead]:
        if name in HEADS and HEADS[name] is not cls:
            raise ValueError(f"a task head named {name!r} is already registered ({HEADS[name].__name__})")
        HEADS[name] = cls
        cls.name = name
        return cls

    return deco


def build_head(name: str, hidden_size: int, **kwargs) -> TaskHead:
    """Head `name` built as cls(hidden_size, **kwargs); `kind=<registered head>` in kwargs builds a head of that
    class under another name (a declared task's head: `{"kind": "classification", "num_classes": 10}`)."""
    kind = kwargs.pop("kind", name)
    if kind not in HEADS:
        raise KeyError(f"unknown task head {kind!r}; registered: {sorted(HEADS)}")
    return HEADS[kind](hidden_size, **kwargs)


class TaskHead(nn.Module):
    name: str = ""
    labels: tuple[str, ...] = ()

    def forward(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def loss(self, out: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@register_head("classification")
class ClassificationHead(TaskHead):
    """dropout -> Linear(D, K); softmax probabilities; cross-entropy loss on class ids (B,)."""

    def __init__(self, hidden_size: int, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_classes)

    def forward(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.classifier(self.dropout(pooled))  # (B, K)
        return {"logits": logits, "probs": logits.float().softmax(-1)}

    def loss(self, out: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out["logits"].float(), labels.long())


@register_head("credit_risk")
class CreditRiskHead(TaskHead):
    """Probability of default: one logit, sigmoid; binary cross-entropy on 0/1 labels (B,)."""

    labels = ("no_default", "default")

    def __init__(self, hidden_size: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, 1)

    def forward(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.classifier(self.dropout(pooled)).squeeze(-1)  # (B,)
        return {"logits": logits, "probs": torch.sigmoid(logits.float())}  # probs: P(default) (B,)

    def loss(self, out: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(out["logits"].float(), labels.float())


@register_head("stock_movement")
class StockMovementHead(ClassificationHead):
    """Next-period direction: 0 = fall, 1 = rise."""

    labels = ("fall", "rise")

    def __init__(self, hidden_size: int, dropout: float = 0.1):
        super().__init__(hidden_size, 2, dropout)


@register_head("sentiment")
class SentimentHead(ClassificationHead):
    """Financial sentiment: 0 = negative, 1 = neutral, 2 = positive."""

    labels = ("negative", "neutral", "positive")

    def __init__(self, hidden_size: int, dropout: float = 0.1):
        super().__init__(hidden_size, 3, dropout)


@register_head("intent")
class IntentHead(ClassificationHead):
    """Customer intent: N classes from the data, plus an L2-normalised embedding (B, E) for answer retrieval."""

    def __init__(self, hidden_size: int, num_classes: int, embedding_dim: int = 0, dropout: float = 0.1):
        super().__init__(hidden_size, num_classes, dropout)
        self.embedding = nn.Linear(hidden_size, embedding_dim or hidden_size)

    def forward(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().forward(pooled)  # logits (B, N), probs (B, N)
        out["embedding"] = F.normalize(self.embedding(pooled), dim=-1)  # (B, E), unit norm
        return out
