"""The seven built-ins are declarations (actors/sources/builtin.yaml) of the schema users' blocks go through, and
loading them through it gives the rows the hand-written loaders gave (pinned digests of id, split and label)."""

from __future__ import annotations

import hashlib
import json

import pytest
from pydantic import ValidationError

from actors.declaration import DatasetDeclaration
from actors.settings import DATASET_NAMES, DataSection
from actors.sources import SOURCES, DataFileError, DeclarationError, DeclaredFileError, load_source
from actors.sources.builtin import PARSER_MODULES, builtin_declarations

ROWS_DIGEST = {
    "german_credit": (1000, "ebefb3645847b508"),
    "lending_club": (42535, "c5d1002bfc462f83"),
    "financial_phrasebank": (4836, "36da589d00fb59e9"),
    "fincuge_finfe": (18177, "487fa149949e5931"),
    "fincuge_finnl": (7955, "3ec0457e375dc2af"),
    "banking77": (13083, "cee139b0b5364068"),
    "stocknet": (26617, "7175907916d88367"),
}
"""Rows and sha256[:16] of `id\\tsplit\\tlabel` lines of each built-in, measured with the hand-written loaders
before the declarations (commit 8d152d9); every column was compared then, once, against the full tables."""


def test_builtin_yaml_declares_the_seven_in_order():
    decls = builtin_declarations()
    assert tuple(decls) == DATASET_NAMES == tuple(SOURCES)
    assert all(isinstance(d, DatasetDeclaration) for d in decls.values())
    assert [n for n, d in decls.items() if d.parser is None] == ["banking77"]  # the generic loader reads it
    assert {d.parser for d in decls.values()} - {None} == set(PARSER_MODULES)
    for name, decl in decls.items():
        spec = SOURCES[name]
        assert (spec.title, spec.source_url, spec.license) == (decl.title, decl.source_url, decl.license)
        assert spec.files[: len(decl.files)] == tuple(decl.files)


def test_the_tokenizer_corpora_do_not_move():
    from actors.pipeline import text_corpora

    assert text_corpora() == ["lending_club", "financial_phrasebank", "fincuge_finfe", "fincuge_finnl", "banking77",
                              "stocknet"]
    assert [SOURCES[n].modalities for n in DATASET_NAMES] == [
        ("tabular",), ("tabular", "text"), ("text",), ("text",), ("text",), ("text",), ("text", "image", "series")]


def test_declared_tasks_agree_with_the_task_registry():
    from actors.tasks import BUILTIN_TASKS

    for name, decl in builtin_declarations().items():
        feeding = [t for t, task in BUILTIN_TASKS.items() if name in task.datasets]
        assert feeding == ([decl.task] if decl.task else []), name


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_rows_are_those_of_the_hand_written_loaders(name, load):
    rows = load(name).rows
    digest = hashlib.sha256("".join(f"{i}\t{s}\t{label}\n" for i, s, label in
                                    zip(rows["id"], rows["split"], rows["label"], strict=True)).encode())
    assert (len(rows), digest.hexdigest()[:16]) == ROWS_DIGEST[name]


def test_a_users_block_cannot_name_a_parser():
    block = {"files": ["a.txt"], "text": ["sentence"], "label": {"column": "label"},
             "split": {"kind": "hash", "column": "sentence"}, "parser": "financial_phrasebank"}
    with pytest.raises(ValidationError, match="parser and options name the Python reader of a built-in"):
        DataSection(declared={"own": block})


# ------------------------------------------------------------- the generic features the built-ins brought


def _write(root, files: dict[str, str]):
    for rel, text in files.items():
        (root / "own" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "own" / rel).write_text(text, encoding="utf-8")


def test_file_split_holdout_classes_file_keep_and_id_format(tmp_path):
    from actors.sources.rules import bucket

    texts = [f"query {i}" for i in range(40)]
    train = "text,intent\n" + "".join(f"{t},{'a' if i % 2 else 'b'}\n" for i, t in enumerate(texts))
    _write(tmp_path, {"train.csv": train + "  padded ,a\n", "test.csv": "text,intent\nx,b\ny,zzz\n",
                      "classes.json": json.dumps(["b", "a"])})
    block = {"files": ["train.csv", "test.csv"], "text": ["text"], "strip_text": False, "keep": ["intent"],
             "id_format": "{stem}-{row}", "label": {"column": "intent", "classes_file": "classes.json"},
             "split": {"kind": "file", "files": {"train.csv": "train", "test.csv": "test"},
                       "validation": {"column": "text", "buckets": [0]}}}
    t = load_source("own", DataSection(root=tmp_path, declared={"own": block}))
    rows = t.rows.set_index("id")
    assert t.classes == ["b", "a"] and rows.loc["train-2", "label"] == 0 and rows.loc["train-3", "label"] == 1
    assert list(rows.columns) == ["split", "label", "text", "intent", "source", "source_row"]
    assert rows.loc["train-42", "text"] == "  padded "  # strip_text: false keeps the file's text
    assert t.reject_counts() == {"label value not in classes.json (column 'intent')": 1}
    assert rows.loc["test-2", "split"] == "test"
    for text, split in zip(rows["text"], rows["split"], strict=True):
        if split != "test":
            assert (split == "validation") == (bucket(text) == 0)
    assert [f.name for f in t.files] == ["train.csv", "test.csv", "classes.json"]


def test_a_file_the_split_does_not_map_is_an_error(tmp_path):
    _write(tmp_path, {"a.csv": "text,y\nx,1\n", "b.csv": "text,y\nz,1\n"})
    block = {"files": ["*.csv"], "text": ["text"], "label": {"column": "y"},
             "split": {"kind": "file", "files": {"a.csv": "train"}}}
    with pytest.raises(DeclarationError, match=r"\['b.csv'\] have no split under split.files"):
        load_source("own", DataSection(root=tmp_path, declared={"own": block}))


def test_headerless_unlabelled_and_a_time_window(tmp_path):
    lines = "".join(f"2014-0{m}-01 note {m}\n" for m in range(1, 10))
    _write(tmp_path, {"notes.txt": lines})
    block = {"files": ["notes.txt"], "read": {"format": "csv", "delimiter": " ", "columns": ["day", "w", "n"]},
             "text": ["w"], "numeric": ["n"],
             "split": {"kind": "time", "column": "day", "train_from": "2014-02-01", "test_from": "2014-06-01",
                       "test_until": "2014-08-01", "validation_buckets": 0}}
    t = load_source("own", DataSection(root=tmp_path, declared={"own": block}))
    assert (t.rows["label"] == -1).all() and t.classes is None
    assert t.split_counts() == {"test": 2, "train": 4} and t.rows["source_row"].tolist() == [2, 3, 4, 5, 6, 7]
    assert t.reject_counts() == {"date before split.train_from (column 'day')": 1,
                                 "date on or after split.test_until (column 'day')": 2}


def test_an_unreadable_file_is_a_declaration_and_a_data_file_error(tmp_path, data_root, copy_tools):
    _write(tmp_path, {"a.csv": "text,y\nx,1\n"})
    (tmp_path / "own" / "a.csv").write_bytes("text,y\ncafé,1\n".encode("utf-16"))
    block = {"files": ["a.csv"], "text": ["text"], "label": {"column": "y"}, "split": {"kind": "random"}}
    with pytest.raises(DeclaredFileError) as err:
        load_source("own", DataSection(root=tmp_path, declared={"own": block}))
    assert isinstance(err.value, DataFileError) and isinstance(err.value, DeclarationError)
    assert err.value.dataset == "own" and err.value.path.name == "a.csv" and "public source" not in str(err.value)

    linked_copy, replace_file = copy_tools
    root = linked_copy(data_root, "banking77", tmp_path / "b")
    replace_file(root, "banking77", "test.csv", b"text,intent\nhi,card_arrival\n")
    with pytest.raises(DataFileError, match="column 'category' is not in test.csv") as err:
        load_source("banking77", DataSection(), root=root)
    assert "builtin.yaml: banking77.label.column" in err.value.where
    assert "PolyAI-LDN/task-specific-datasets" in str(err.value)  # a built-in names its public source
