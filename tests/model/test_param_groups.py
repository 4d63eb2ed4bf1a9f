"""Parameter groups: pretrained weights at the run's rate, new modules at their own, no decay on biases,
norms and embeddings; the rates are what the config says."""

import torch

from model.param_groups import param_groups, pretrained_names
from model.task import FinMMForTask


def _group_of(groups, param):
    return next(g for g in groups if any(p is param for p in g["params"]))


def test_new_modules_get_their_own_rate_and_no_decay_where_due(config):
    model = FinMMForTask(config)
    groups = param_groups(model, 3e-5, 1e-3, 0.01, pretrained_names(model, "minilm"))
    fin = model.finmm
    encoder_weight = fin.encoder.layers[0].attention.query.weight
    assert _group_of(groups, encoder_weight)["lr"] == 3e-5 and _group_of(groups, encoder_weight)["weight_decay"] == 0.01
    words = fin.embedders["text"].word_embeddings.weight
    assert _group_of(groups, words)["lr"] == 3e-5 and _group_of(groups, words)["weight_decay"] == 0.0
    tab = fin.embedders["tabular"]
    ple = tab.numeric.linear.weight  # (F, bins, D): a new weight matrix
    assert _group_of(groups, ple)["lr"] == 1e-3 and _group_of(groups, ple)["weight_decay"] == 0.01
    for p in (tab.feature_embeddings, tab.category_embeddings.weight, fin.embed_norms["tabular"].weight,
              fin.cls_embedding):
        assert _group_of(groups, p)["lr"] == 1e-3 and _group_of(groups, p)["weight_decay"] == 0.0
    head = model.heads["credit_risk"].classifier
    assert _group_of(groups, head.weight)["lr"] == 1e-3 and _group_of(groups, head.weight)["weight_decay"] == 0.01
    assert _group_of(groups, head.bias)["weight_decay"] == 0.0
    every = [p for g in groups for p in g["params"]]
    assert len(every) == len(list(model.parameters())) == len({id(p) for p in every})


def test_a_bundle_start_keeps_the_backbone_at_the_run_rate(config):
    model = FinMMForTask(config)
    groups = param_groups(model, 2e-5, 1e-3, 0.0, pretrained_names(model, "bundle"))
    assert _group_of(groups, model.finmm.embedders["tabular"].feature_embeddings)["lr"] == 2e-5
    assert _group_of(groups, model.heads["sentiment"].classifier.weight)["lr"] == 1e-3


def test_random_init_and_frozen_parameters(config):
    model = FinMMForTask(config)
    model.finmm.encoder.requires_grad_(False)
    groups = param_groups(model, 5e-4, 1e-3, 0.01, pretrained_names(model, None))
    assert {g["lr"] for g in groups} == {5e-4}  # nothing pretrained: one rate
    trainable = {id(p) for g in groups for p in g["params"]}
    assert not any(id(p) in trainable for p in model.finmm.encoder.parameters())
    assert torch.is_tensor(groups[0]["params"][0])
