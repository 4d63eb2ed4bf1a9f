"""Optimizer parameter groups: pretrained weights train at the run's learning rate, newly initialised modules
at their own, and biases, norms and embeddings get no weight decay.

A pretrained weight is one copied from a source at build time: MiniLM's text embeddings, embedding LayerNorm
and encoder blocks (`init_from_minilm`), or the whole backbone when a run starts from a finmm bundle. Everything
else (the tabular, image and series embedders, their norms, the learned CLS, the task and pretraining heads) is
new. Rows of the word-embedding table are one tensor, so the added CJK rows share the text path's rate here; the
CJK warm start stage trains them apart (docs/training.md).
"""

from __future__ import annotations

import torch.nn as nn

MINILM_PREFIXES = ("embedders.text.", "embed_norms.text.", "encoder.", "modality_embeddings.")
"""Backbone-relative names of what `init_from_minilm` copies (the modality table's text row among them)."""


def pretrained_names(model: nn.Module, source: str | None) -> set[str]:
    """Full parameter names of `model` that start pretrained. source: "minilm", "bundle" (the backbone came
    from a saved finmm model) or None (random init: nothing is pretrained)."""
    if source is None:
        return set()
    if source not in ("minilm", "bundle"):
        raise ValueError(f"unknown pretrained source {source!r}; use 'minilm', 'bundle' or None")
    prefix = "finmm." if hasattr(model, "finmm") else ""
    out = set()
    for name, _ in model.named_parameters():
        if not name.startswith(prefix):
            continue
        inner = name[len(prefix):]
        if source == "bundle" or inner.startswith(MINILM_PREFIXES):
            out.add(name)
    return out


def _no_decay(model: nn.Module) -> set[str]:
    """Biases, every parameter of a norm or embedding table, and learned embedding vectors."""
    names = set()
    for module_name, module in model.named_modules():
        for param_name, p in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if (p.ndim < 2 or isinstance(module, (nn.LayerNorm, nn.Embedding)) or param_name == "bias"
                    or "embedding" in param_name):
                names.add(full)
    return names


def param_groups(model: nn.Module, learning_rate: float, new_module_learning_rate: float | None,
                 weight_decay: float, pretrained: set[str]) -> list[dict]:
    """AdamW groups over the trainable parameters: (pretrained | new) x (decay | no decay). Each group is
    {"name", "params", "lr", "weight_decay"}. With nothing pretrained, or no separate new-module rate, every
    parameter takes `learning_rate`."""
    no_decay = _no_decay(model)
    new_lr = new_module_learning_rate if (pretrained and new_module_learning_rate) else learning_rate
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault((name in pretrained, name in no_decay), []).append(p)
    out = []
    for (is_pretrained, is_no_decay), params in sorted(groups.items(), reverse=True):
        out.append({
            "name": f"{'pretrained' if is_pretrained else 'new'}{'/no_decay' if is_no_decay else ''}",
            "params": params,
            "lr": learning_rate if is_pretrained else new_lr,
            "weight_decay": 0.0 if is_no_decay else weight_decay,
        })
    return out
