"""The task registry (actors/tasks.py): built-ins as declarations, declared tasks, and what they refuse."""

from __future__ import annotations

import pytest

from actors.settings import DataSection
from actors.tasks import BUILTIN_TASKS, task_registry
from cluster.tasks import TASKS, task_spec, task_specs
from finmm.config import ConfigError, load_settings

OWN = {"files": ["q.jsonl"], "text": ["query"], "label": {"column": "intent"},
       "split": {"kind": "hash"}, "task": "support"}


def test_builtin_tasks_are_declarations_with_their_old_heads_and_metrics():
    assert {n: (t.head, t.kind, tuple(t.datasets), t.metric(), t.endpoint_path(n)) for n, t in BUILTIN_TASKS.items()} \
        == {"credit_risk": ("credit_risk", "binary_risk", ("lending_club",), "auc", "credit-risk"),
            "stock_movement": ("stock_movement", "movement", ("stocknet",), "accuracy", "stock-movement"),
            "sentiment": ("sentiment", "multi_class", ("financial_phrasebank", "fincuge_finfe"), "accuracy",
                          "sentiment"),
            "customer_service": ("intent", "multi_class", ("banking77",), "accuracy", "customer-service")}
    assert list(TASKS) == list(BUILTIN_TASKS) and task_spec("customer_service").head == "intent"


def test_a_declared_task_gets_its_data_sets_from_their_task_key():
    data = DataSection(declared={"own_intents": OWN}, tasks={"support": {"kind": "multi_class"}})
    registry = task_registry(data)
    assert registry["support"].datasets == ["own_intents"] and registry["support"].endpoint == "support"
    spec = task_specs(data)["support"]
    assert (spec.head, spec.kind, spec.selection_metric, spec.head_class()) == (
        "support", "multi_class", "accuracy", "classification")
    assert BUILTIN_TASKS["credit_risk"].datasets == ["lending_club"]  # the defaults are not changed in place


@pytest.mark.parametrize(("override", "message"), [
    ("data.tasks={credit_risk: {kind: binary_risk}}", "is a built-in task"),
    ("data.tasks={support: {kind: multi_class, datasets: [bankng77]}}", "did you mean 'banking77'"),
    ("data.tasks={support: {kind: multi_class, endpoint: sentiment}}", "/v1/sentiment already serves task"),
    ("data.tasks={support: {kind: multi_class, selection_metric: auc}}", "not computed for a multi_class task"),
    ("data.tasks={support: {kind: binary_risk, head: intent}}", "is the multi_class head of task"),
    ("data.tasks={support: {kind: multi_class, endpoint: Support_Intents}}", "one path segment"),
    ("finetune.tasks=[suport]", "did you mean 'support'"),
])
def test_a_declared_task_that_cannot_work_is_refused_naming_the_key(override, message):
    base = ["data.tasks={support: {kind: multi_class}}"] if "suport" in override else []
    with pytest.raises(ConfigError, match=message):
        load_settings(None, [*base, override])


def test_a_binary_task_needs_the_positive_class():
    with pytest.raises(ValueError, match="label.positive"):
        DataSection(declared={"own": {**OWN, "task": "credit_risk"}})
