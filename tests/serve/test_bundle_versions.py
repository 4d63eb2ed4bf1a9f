"""A saved bundle records the tokenizer and tabular versions it was trained with (preprocessing_state.json ->
versions), and serving refuses a bundle whose tokenizer.json is not that one (issue 16 item 7)."""

from __future__ import annotations

import json
import shutil

import pytest
from tokenizers import Tokenizer

from actors.manifest import read_manifest
from actors.versions import VersionMismatchError, tokenizer_record, tokenizer_version
from model.bundle import PREPROCESSING_FILE, TOKENIZER_FILE
from serve.preprocess import Preprocessor


def test_a_bundle_records_its_versions(model_bundle):
    state = json.loads((model_bundle / PREPROCESSING_FILE).read_text())
    data = model_bundle.parent / "data"  # where tests/serve/conftest.py prepared it
    recorded = state["versions"]["tokenizer"]
    assert recorded["version"] == tokenizer_version(model_bundle / TOKENIZER_FILE) == tokenizer_record(data)["version"]
    assert recorded["corpora"] == ["financial_phrasebank", "banking77"] and recorded["kind"] == "built"
    assert state["versions"]["tabular"] == {
        "lending_club": read_manifest(data, "lending_club")["state"]["tabular"]["version"]}
    for name in ("lending_club", "financial_phrasebank", "banking77", "stocknet"):
        assert read_manifest(data, name)["tokenizer"]["version"] == recorded["version"]
    Preprocessor(model_bundle)  # its own tokenizer: loads


def test_serving_refuses_a_bundle_whose_tokenizer_was_swapped(model_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(model_bundle, bundle)
    other = Tokenizer.from_file(str(bundle / TOKENIZER_FILE))
    other.add_tokens(["钼"])  # one more token: other ids
    other.save(str(bundle / TOKENIZER_FILE))
    recorded = json.loads((bundle / PREPROCESSING_FILE).read_text())["versions"]["tokenizer"]["version"]
    with pytest.raises(VersionMismatchError) as err:
        Preprocessor(bundle)
    message = str(err.value)
    assert tokenizer_version(other) in message and recorded in message
    assert "put back the bundle's own tokenizer.json" in message
