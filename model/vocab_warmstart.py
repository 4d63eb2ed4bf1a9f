"""Train only the added vocabulary: the warm start of the CJK token embeddings (`pretrain.trainable: new_vocab`).

`finmm prepare` appends the train corpora's missing CJK characters to MiniLM's WordPiece vocabulary (ids from
the base tokenizer's size up, `actors/text.py`), and `init_from_minilm` starts those rows from MiniLM's mean
word embedding plus noise. `freeze_all_but_new_vocab` makes a `FinMMForPretraining` whose only moving parts
are

- the word-embedding rows with id >= `base_vocab_size` (the added tokens), and
- the MLM head's own parameters (dense, LayerNorm, output bias; its decoder *is* the word-embedding table);

every other parameter gets `requires_grad=False`. The added rows share one tensor with the base rows, so that
tensor stays trainable and a gradient hook zeroes its rows below `base_vocab_size` on every backward pass
(before DeepSpeed or the optimizer see the gradient). With AdamW, a zero gradient from the first step on keeps
both moments at zero, so those rows get an update of exactly zero, *provided the tensor's weight decay is 0*:
AdamW's decoupled decay multiplies every row by (1 - lr * wd) whatever the gradient. `PretrainSection`
therefore refuses `trainable: new_vocab` with `weight_decay` > 0. Gradient clipping only rescales the gradient,
so zero rows stay zero.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.utils.hooks import RemovableHandle

from .pretraining import FinMMForPretraining

TRAINED_MODULE = "mlm_head"
"""The submodule that trains in full beside the added word rows (its parameters start fresh)."""


def base_vocab_size(preprocessing_state: Mapping) -> int:
    """The base tokenizer's vocabulary size as `finmm prepare` recorded it with every text data set
    (`datasets.<name>.text.base_vocab_size` of a run's or bundle's preprocessing state): ids below it are the
    base tokenizer's own (MiniLM's), ids from it up were appended by `finmm prepare`."""
    sizes = {
        int(state["text"]["base_vocab_size"])
        for state in preprocessing_state.get("datasets", {}).values()
        if isinstance(state, Mapping) and "base_vocab_size" in (state.get("text") or {})
    }
    if len(sizes) != 1:
        raise ValueError(
            "the prepared data records "
            + ("no base vocabulary size" if not sizes else f"several base vocabulary sizes {sorted(sizes)}")
            + "; run `finmm prepare` again so every text data set shares one tokenizer"
        )
    return sizes.pop()


def freeze_all_but_new_vocab(model: FinMMForPretraining, base_vocab_size: int) -> RemovableHandle:
    """Freeze `model` in place except the word rows with id >= base_vocab_size and the MLM head; returns the
    handle of the gradient hook that zeroes the rows below base_vocab_size (keep the model, not the handle,
    for training: the hook lives as long as the parameter)."""
    table = model.finmm.word_embeddings.weight  # (V, D), also the MLM decoder weight
    vocab, width = table.shape
    if not 0 < base_vocab_size < vocab:
        raise ValueError(
            f"trainable new_vocab needs added tokens: the vocabulary has {vocab} ids and the base tokenizer "
            f"{base_vocab_size}, so there is no new row to train (is data.text.extend_cjk off?)"
        )
    for name, param in model.named_parameters():
        param.requires_grad_(param is table or name.startswith(TRAINED_MODULE + "."))

    def zero_base_rows(grad: torch.Tensor) -> torch.Tensor:  # grad (V, D)
        if grad.shape != (vocab, width):  # e.g. a flattened partition: indexing rows would zero the wrong values
            raise RuntimeError(f"word-embedding gradient of shape {tuple(grad.shape)}, expected {(vocab, width)}")
        grad = grad.clone()
        grad[:base_vocab_size] = 0.0  # assignment, not a product: an inf/nan gradient row cannot leak through
        return grad

    return table.register_hook(zero_base_rows)


def trainable_parameter_names(model: torch.nn.Module) -> list[str]:
    """Names of the parameters that still require a gradient (for logs and tests)."""
    return [name for name, param in model.named_parameters() if param.requires_grad]
