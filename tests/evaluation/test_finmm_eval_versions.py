"""Scoring (and finetuning from) a bundle on data prepared with another tokenizer or another fitted tabular
state is refused with both versions and the fix, not run on ids or scales the model never saw (issue 16 item 7).
The bundle is the session's tiny served bundle (32 real rows per split); the other data is prepared here."""

from __future__ import annotations

import shutil

import pytest

from actors.pipeline import prepare
from actors.settings import DataSection
from actors.versions import VersionMismatchError, check_init_bundle, tokenizer_record
from evaluation.finmm_eval import evaluate_bundle
from model.bundle import TOKENIZER_FILE, load_bundle

pytestmark = pytest.mark.timeout(600)


def test_another_tokenizer_is_refused(served_bundle, tmp_path):
    out = tmp_path / "data"
    # the same sentences, but a vocabulary also counted over FinFE's Chinese posts
    prepare(DataSection(max_rows_per_split=32, output_dir=out), ["financial_phrasebank"],
            vocab_datasets=["financial_phrasebank", "fincuge_finfe"])
    theirs, ours = tokenizer_record(out)["version"], tokenizer_record(served_bundle.parent / "data")["version"]
    assert theirs != ours
    with pytest.raises(VersionMismatchError) as err:
        evaluate_bundle(served_bundle, "sentiment", out, ablations=False)
    message = str(err.value)
    assert theirs in message and ours in message and "fincuge_finfe" in message
    assert f"copy {served_bundle / TOKENIZER_FILE} to {out / TOKENIZER_FILE}" in message
    with pytest.raises(VersionMismatchError, match=f"trained with tokenizer {ours}"):
        check_init_bundle(out, served_bundle, load_bundle(served_bundle).preprocessing_state)


def test_another_fitted_tabular_state_is_refused(served_bundle, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    shutil.copyfile(served_bundle / TOKENIZER_FILE, out / TOKENIZER_FILE)  # pinned: the bundle's own tokenizer
    prepare(DataSection(max_rows_per_split=16, output_dir=out), ["lending_club"])  # fitted on other train rows
    assert tokenizer_record(out)["version"] == tokenizer_record(served_bundle.parent / "data")["version"]
    with pytest.raises(VersionMismatchError, match=r"tabular features of 'lending_club'.* fitted state tab-"):
        evaluate_bundle(served_bundle, "credit_risk", out, ablations=False)
    with pytest.raises(VersionMismatchError, match="fitted state"):
        check_init_bundle(out, served_bundle, load_bundle(served_bundle).preprocessing_state)
