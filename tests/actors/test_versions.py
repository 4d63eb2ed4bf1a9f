"""Issue 16 item 7: adding a data set never silently changes what is already trained.

The tokenizer and the fitted tabular state carry versions (actors/versions.py); `prepare` keeps the tokenizer it
finds and records its version in every manifest; a data set tokenised with another version is refused with both
versions and the fix. Real data: the Banking77 slice of tests/actors/sources/data and 60 FinFE forum posts
(Chinese, so a vocabulary built from them gains CJK characters)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from tokenizers import Tokenizer

from actors.data_root import resolve_data_root
from actors.manifest import TOKENIZER, read_manifest
from actors.pipeline import prepare
from actors.settings import DataSection
from actors.tabular import TabularState
from actors.text import base_tokenizer_path, build_tokenizer
from actors.versions import (
    BUILT,
    PINNED,
    VersionMismatchError,
    check_prepared,
    tabular_version,
    tokenizer_record,
    tokenizer_version,
)

pytestmark = pytest.mark.timeout(300)

SOURCES = Path(__file__).parent / "sources" / "data"
INTENTS = {"files": ["queries.jsonl"], "text": ["query"], "label": {"column": "intent"},
           "split": {"kind": "column", "column": "part"}}
FORUM = {"files": ["posts.jsonl"], "text": ["post"], "label": {"column": "mood"},
         "split": {"kind": "random", "fractions": {"train": 0.8, "validation": 0.1, "test": 0.1}, "seed": 0}}


@pytest.fixture
def root(tmp_path) -> Path:
    """A data root with own_intents (copied) and own_forum: the first 60 FinFE train posts as JSON Lines."""
    data_root = resolve_data_root(None)
    out = tmp_path / "root"
    shutil.copytree(SOURCES / "own_intents", out / "own_intents")
    posts = json.loads((data_root / "fincuge_finfe" / "train_list.json").read_text(encoding="utf-8"))[:60]
    (out / "own_forum").mkdir(parents=True)
    pd.DataFrame({"post": [p for p, _ in posts], "mood": [str(m) for _, m in posts]}).to_json(
        out / "own_forum" / "posts.jsonl", orient="records", lines=True, force_ascii=False)
    return out


def test_tokenizer_version_is_the_vocabulary_not_the_truncation():
    settings = DataSection()
    tokenizer, _ = build_tokenizer(settings, [])
    same = Tokenizer.from_str(tokenizer.to_str())
    same.enable_truncation(7)  # where sequences stop is not part of the version
    assert tokenizer_version(same) == tokenizer_version(tokenizer)
    assert tokenizer_version(tokenizer).startswith("tok-") and len(tokenizer_version(tokenizer)) == 20
    extended, info = build_tokenizer(settings, ["钼已成粥 钼已成粥"])  # two new characters, each twice
    assert info["added_tokens"] > 0
    assert tokenizer_version(extended) != tokenizer_version(tokenizer)


def test_tabular_version_survives_a_manifest_round_trip():
    frame = pd.DataFrame({"num__a": [1.0, 2.0, 4.0, None], "cat__b": ["x", "y", "x", None]})
    state = TabularState.fit(frame, ["num__a"], ["cat__b"], DataSection())
    as_in_manifest = json.loads(state.to_json()) | {"cardinalities": state.cardinalities, "version": "ignored"}
    assert tabular_version(as_in_manifest) == tabular_version(state)
    refit = TabularState.fit(frame.iloc[:3], ["num__a"], ["cat__b"], DataSection())
    assert tabular_version(refit) != tabular_version(state)


def test_declaring_a_data_set_keeps_the_tokenizer_and_a_rebuild_is_refused_clearly(ray_cluster, tmp_path, root):
    out = tmp_path / "out"
    first = DataSection(root=root, output_dir=out, declared={"own_intents": INTENTS}, datasets=["own_intents"])
    prepare(first, vocab_datasets=["own_intents"])
    record = tokenizer_record(out)
    assert record["kind"] == BUILT and record["corpora"] == ["own_intents"]
    assert read_manifest(out, "own_intents")["tokenizer"]["version"] == record["version"]
    assert read_manifest(out, "own_intents")["state"]["text"]["version"] == record["version"]
    before = (out / TOKENIZER).read_bytes()

    # a new data set is declared, and the vocabulary corpora would now include its Chinese posts: kept anyway
    both = DataSection(root=root, output_dir=out, declared={"own_intents": INTENTS, "own_forum": FORUM})
    stages: list[tuple[str, str]] = []
    prepare(both, ["own_forum"], lambda d, s: stages.append((d, s)), vocab_datasets=["own_intents", "own_forum"])
    assert (out / TOKENIZER).read_bytes() == before
    assert ("tokenizer", f"kept {record['version']} (built; `--rebuild-tokenizer` to rebuild)") in stages
    assert read_manifest(out, "own_forum")["tokenizer"]["version"] == record["version"]
    assert check_prepared(out, ["own_intents", "own_forum"])["version"] == record["version"]

    # asked for explicitly, the rebuild adds the posts' CJK characters: a new version, the old shards refused
    stages.clear()
    prepare(both, ["own_forum"], lambda d, s: stages.append((d, s)), vocab_datasets=["own_forum"],
            rebuild_tokenizer=True)
    new = tokenizer_record(out)
    assert new["version"] != record["version"] and new["corpora"] == ["own_forum"]
    assert any(d == "tokenizer" and "re-prepare own_intents" in s for d, s in stages)
    check_prepared(out, ["own_forum"])
    with pytest.raises(VersionMismatchError) as err:
        check_prepared(out, ["own_forum", "own_intents"])
    message = str(err.value)
    assert record["version"] in message and new["version"] in message
    assert "built from own_intents" in message and "built from own_forum" in message
    assert "finmm prepare --datasets own_intents" in message


def test_a_tokenizer_copied_in_is_pinned_and_kept(ray_cluster, tmp_path, root):
    out = tmp_path / "out"
    out.mkdir()
    pinned, info = build_tokenizer(DataSection(), ["钼已成粥 钼已成粥"])  # e.g. the tokenizer.json of a bundle
    pinned.save(str(out / TOKENIZER))
    settings = DataSection(root=root, output_dir=out, declared={"own_intents": INTENTS}, datasets=["own_intents"])
    prepare(settings, vocab_datasets=["own_intents"])
    record = tokenizer_record(out)
    assert record["kind"] == PINNED and record["version"] == tokenizer_version(pinned)
    assert read_manifest(out, "own_intents")["tokenizer"] == {"version": record["version"], "kind": PINNED,
                                                              "corpora": []}
    text = read_manifest(out, "own_intents")["state"]["text"]
    base = Tokenizer.from_file(str(base_tokenizer_path(settings.text))).get_vocab_size(with_added_tokens=True)
    assert text["base_vocab_size"] == base and text["added_tokens"] == info["added_tokens"] > 0
