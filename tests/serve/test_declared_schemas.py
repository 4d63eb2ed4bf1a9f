"""Request schemas of declared data sets (serve/declared.py, serve/schemas.py): their own fields, and the
`dataset` rule when a bundle serves several credit data sets."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from serve import schemas
from serve.declared import request_model

LOANS = [{"name": "amount", "column": "num__amount", "kind": "numeric", "description": "numeric"},
         {"name": "grade", "column": "cat__grade", "kind": "categorical", "description": "categorical"}]
GERMAN = [{"name": "months", "column": "num__months", "kind": "numeric", "description": "numeric"}]
TEXT = schemas.text_type(100)


def test_one_credit_data_set_keeps_the_request_as_before():
    model = schemas.credit_request_model(LOANS, TEXT)
    assert "dataset" not in model.model_fields
    assert model.model_validate({"features": {"amount": 10.0}}).features.amount == 10.0


def test_two_credit_data_sets_need_the_request_to_name_its_own():
    adapter = TypeAdapter(schemas.credit_request_model({"own_loans": LOANS, "own_german": GERMAN}, TEXT))
    chosen = adapter.validate_python({"dataset": "own_german", "features": {"months": 12.0}})
    assert chosen.dataset == "own_german" and chosen.features.months == 12.0
    with pytest.raises(ValidationError, match="amount"):  # own_german has no 'amount'
        adapter.validate_python({"dataset": "own_german", "features": {"amount": 1.0}})
    with pytest.raises(ValidationError, match="dataset"):
        adapter.validate_python({"features": {"months": 12.0}})
    schema = adapter.json_schema()
    assert set(schema["discriminator"]["mapping"]) == {"own_loans", "own_german"}


ENTRY = {"kind": "multi_class", "head": "support", "endpoint": "support", "datasets": ["own_intents"],
         "classes": ["a", "b"], "fields": {"own_intents": {"text": ["query"], "numeric": ["tenure months"],
                                                           "categorical": [], "image": []}}}


def test_a_declared_task_request_lists_the_data_sets_own_columns():
    model = request_model("support", ENTRY, TEXT)
    body = model.model_validate({"query": "where is my card", "tenure months": 3.0})
    assert body.model_dump(by_alias=True) == {"dataset": None, "query": "where is my card", "tenure months": 3.0}
    properties = model.model_json_schema(by_alias=True)["properties"]
    assert {"query", "tenure months", "dataset"} == set(properties)
    with pytest.raises(ValidationError, match="every field is missing"):
        model.model_validate({})
    with pytest.raises(ValidationError, match="Extra inputs"):
        model.model_validate({"text": "hello"})
