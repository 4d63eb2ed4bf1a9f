"""The new-vocabulary warm start: only the added word rows and the MLM head move under MLM + AdamW."""

import pytest
import torch

from model.dummy import tiny_config
from model.param_groups import param_groups, pretrained_names
from model.pretraining import FinMMForPretraining
from model.vocab_warmstart import base_vocab_size, freeze_all_but_new_vocab, trainable_parameter_names

BASE, VOCAB = 400, 600
"""A small stand-in for MiniLM's base vocabulary and the vocabulary after `finmm prepare` appended tokens."""


def text_batch(g: torch.Generator, batch_size: int = 8, length: int = 16) -> dict:
    """Texts whose ids mix base and added tokens (no special id between [CLS] and [SEP])."""
    ids = torch.randint(200, VOCAB, (batch_size, length), generator=g)  # (B, T)
    ids[:, 0], ids[:, -1] = 101, 102
    return {"text": {"input_ids": ids, "attention_mask": torch.ones_like(ids)}}


@pytest.fixture
def model():
    return FinMMForPretraining(tiny_config(text={"vocab_size": VOCAB}))


def test_only_new_rows_and_the_mlm_head_move(model, gen):
    freeze_all_but_new_vocab(model, BASE)
    table = model.finmm.word_embeddings.weight
    assert set(trainable_parameter_names(model)) == {"finmm.embedders.text.word_embeddings.weight"} | {
        n for n, _ in model.named_parameters() if n.startswith("mlm_head.")
    }
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    # the training loop's groups; weight decay is asked for, but the embedding table's group never decays
    # (and PretrainSection refuses new_vocab with weight_decay > 0 in any case)
    groups = param_groups(model, 1e-2, 1e-2, 0.01, pretrained_names(model, "minilm"))
    assert next(g for g in groups if any(p is table for p in g["params"]))["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in groups) == len(trainable_parameter_names(model))
    optimizer = torch.optim.AdamW([{k: v for k, v in g.items() if k != "name"} for g in groups])
    model.train()
    for step in range(4):
        loss = model(text_batch(gen), generator=torch.Generator().manual_seed(step))["loss"]
        optimizer.zero_grad()
        loss.backward()
        assert torch.count_nonzero(table.grad[:BASE]) == 0 and torch.count_nonzero(table.grad[BASE:]) > 0
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()

    after = model.state_dict()
    word = "finmm.embedders.text.word_embeddings.weight"
    assert torch.equal(after[word][:BASE], before[word][:BASE])  # bit-identical base rows
    assert (after[word][BASE:] != before[word][BASE:]).any(dim=1).all()  # every added row moved (softmax)
    for name, value in after.items():
        if name == word:
            continue
        if name.startswith("mlm_head."):
            assert not torch.equal(value, before[name]), name
        else:
            assert torch.equal(value, before[name]), name  # encoder, embedders, other heads: untouched


def test_hook_zeroes_non_finite_base_gradients(model):
    freeze_all_but_new_vocab(model, BASE)
    table = model.finmm.word_embeddings.weight
    (table * torch.full_like(table, float("inf"))).sum().backward()
    assert torch.count_nonzero(table.grad[:BASE]) == 0 and torch.isinf(table.grad[BASE:]).all()


def test_needs_added_rows(model):
    with pytest.raises(ValueError, match="no new row"):
        freeze_all_but_new_vocab(model, VOCAB)


def test_base_vocab_size_comes_from_the_prepared_tokenizer_record():
    text = {"base_vocab_size": 30522, "added_tokens": 3}
    state = {"datasets": {"fincuge_finfe": {"text": text}, "fincuge_finnl": {"text": text}, "german_credit": {}}}
    assert base_vocab_size(state) == 30522
    with pytest.raises(ValueError, match="no base vocabulary size"):
        base_vocab_size({"datasets": {"german_credit": {}}})
    state["datasets"]["fincuge_finnl"] = {"text": {"base_vocab_size": 21128}}
    with pytest.raises(ValueError, match="several"):
        base_vocab_size(state)
