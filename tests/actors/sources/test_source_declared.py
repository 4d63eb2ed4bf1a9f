"""The generic loader of declared data sets, on slices of the real data (tests/actors/sources/data/, written by
make_own_data.py from Lending Club and Banking77). No Ray."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from actors.settings import DataSection
from actors.sources import DeclarationError, load_source, source_specs

DATA = Path(__file__).parent / "data"
LOANS = DATA / "own_loans" / "loans.csv"
STATUS = {"Fully Paid": "repaid", "Charged Off": "default"}


def loans_decl(**changes) -> dict:
    decl = {
        "files": ["loans.csv"],
        "read": {"delimiter": ";"},
        "text": ["loan_title", "notes"],
        "numeric": ["amount", "term_months", "interest_rate", "income", "debt_to_income"],
        "categorical": ["grade", "home", "purpose", "state"],
        "id": "application_id",
        "label": {"column": "status", "classes": dict(STATUS), "positive": "default"},
        "split": {"kind": "time", "column": "issued", "test_from": "2011-01-01"},
    }
    return decl | changes


def intents_decl(**changes) -> dict:
    return {"files": ["queries.jsonl"], "text": ["query"], "label": {"column": "intent"},
            "split": {"kind": "column", "column": "part"}} | changes


def load(name: str, decl: dict, root: Path = DATA, **settings):
    return load_source(name, DataSection(declared={name: decl}, **settings), root=root)


def raw_loans() -> pd.DataFrame:
    return pd.read_csv(LOANS, sep=";", dtype=str, keep_default_na=False, na_values=[""])


def copy_root(tmp_path: Path, folder: str = "own_loans") -> Path:
    shutil.copytree(DATA / folder, tmp_path / folder)
    return tmp_path


def test_loans_csv_rows_splits_and_rejects_follow_the_file():
    table = load("own_loans", loans_decl())
    raw = raw_loans()
    table.check_reconciled()
    assert table.n_read == len(raw) and table.classes == ["repaid", "default"]
    mapped = raw[raw["status"].isin(list(STATUS))]
    assert len(table.rows) == len(mapped)
    assert table.reject_counts() == {"label value not in label.classes (column 'status')": len(raw) - len(mapped)}
    assert set(table.rejected["status"]) == set(raw["status"]) - set(STATUS)
    n_test = int((pd.to_datetime(mapped["issued"]) >= "2011-01-01").sum())
    assert table.split_counts()["test"] == n_test and table.split_counts()["train"] > 0
    rows = table.rows.set_index("id")
    expected = mapped.set_index("application_id")
    assert (rows["label"] == (expected["status"] == "Charged Off").astype(int).loc[rows.index]).all()
    first = expected.iloc[0]
    assert rows.loc[expected.index[0], "text"] == f"loan_title: {first['loan_title']} | notes: {first['notes']}"
    assert rows.loc[expected.index[0], "cat__grade"] == first["grade"]


def test_loans_agree_with_the_builtin_lending_club_loader(load):
    """The slice's rows are Lending Club's: same label and amount as the built-in loader gives the same lines."""
    builtin = load("lending_club").rows.set_index("source_row")
    declared = load_source("own_loans", DataSection(declared={"own_loans": loans_decl()}), root=DATA).rows
    lines = declared["id"].str.removeprefix("LC").astype(int)
    assert (builtin.loc[lines, "label"].to_numpy() == declared["label"].to_numpy()).all()
    assert np.allclose(builtin.loc[lines, "num__loan_amnt"].to_numpy(), declared["num__amount"].to_numpy())
    assert (builtin.loc[lines, "split"].eq("test").to_numpy() == declared["split"].eq("test").to_numpy()).all()


def test_parquet_jsonl_and_latin1_tsv_give_the_same_rows(tmp_path):
    csv_rows = load("own_loans", loans_decl()).rows.drop(columns=["source", "source_row"])  # line vs record number
    native = pd.read_csv(LOANS, sep=";")
    root = tmp_path / "own_loans"
    root.mkdir()
    native.to_parquet(root / "loans.parquet")
    native.to_json(root / "loans.jsonl", orient="records", lines=True)
    raw_loans().to_csv(root / "loans.tsv", sep="\t", index=False, encoding="latin-1", errors="replace")
    for file, read in (("loans.parquet", {}), ("loans.jsonl", {}), ("loans.tsv", {"encoding": "latin-1"})):
        other = load("own_loans", loans_decl(files=[file], read=read), root=tmp_path).rows
        other = other.drop(columns=["source", "source_row"])
        pd.testing.assert_frame_equal(other, csv_rows, check_dtype=False, obj=file)


def test_globs_read_every_matching_file_in_order(tmp_path):
    raw = raw_loans()
    root = tmp_path / "own_loans"
    root.mkdir()
    raw.iloc[:100].to_csv(root / "loans_a.csv", index=False)
    raw.iloc[100:].to_csv(root / "loans_b.csv", index=False)
    table = load("own_loans", loans_decl(files=["loans_*.csv"], read={}), root=tmp_path)
    assert [p.name for p in table.files] == ["loans_a.csv", "loans_b.csv"]
    assert table.n_read == len(raw) and table.rows["source"].iloc[-1] == "loans_b.csv"
    with pytest.raises(DeclarationError, match="matches no file") as info:
        load("own_loans", loans_decl(files=["loans_2012*.csv"]), root=tmp_path)
    assert "loans_a.csv" in info.value.fix


def test_intents_multiclass_from_the_data_and_renamed_classes():
    table = load("own_intents", intents_decl())
    raw = pd.read_json(DATA / "own_intents" / "queries.jsonl", lines=True)
    assert table.classes == sorted(raw["intent"].unique()) and len(table.classes) == 10
    assert table.split_counts() == raw["part"].value_counts().sort_index().to_dict()
    assert list(table.rows["text"]) == list(raw["query"])
    renamed = {old: f"intent_{i}" for i, old in enumerate(reversed(sorted(raw["intent"].unique())))}
    again = load("own_intents", intents_decl(label={"column": "intent", "classes": renamed}))
    assert again.classes == list(renamed.values())
    assert (np.array(again.classes)[again.rows["label"]] == raw["intent"].map(renamed)).all()


def test_hash_random_and_kfold_splits():
    ids = load("own_loans", loans_decl(split={"kind": "hash", "column": "state", "buckets": 5, "test": [0],
                                                 "validation": [1]})).rows
    bucket = ids["cat__state"].map(lambda s: int(hashlib.md5(s.encode()).hexdigest(), 16) % 5)
    assert (ids["split"] == np.where(bucket == 0, "test", np.where(bucket == 1, "validation", "train"))).all()
    assert ids.groupby("cat__state")["split"].nunique().max() == 1  # one state, one side

    fractions = {"train": 0.7, "validation": 0.1, "test": 0.2}
    a = load("own_loans", loans_decl(split={"kind": "random", "fractions": fractions, "seed": 3})).rows
    b = load("own_loans", loans_decl(split={"kind": "random", "fractions": fractions, "seed": 3})).rows
    c = load("own_loans", loans_decl(split={"kind": "random", "fractions": fractions, "seed": 4})).rows
    n = len(a)
    assert a["split"].value_counts().to_dict() == {"train": round(0.7 * n), "test": round(0.2 * n),
                                                   "validation": n - round(0.7 * n) - round(0.2 * n)}
    assert (a["split"] == b["split"]).all() and not (a["split"] == c["split"]).all()

    folds = load("own_loans", loans_decl(split={"kind": "kfold", "folds": 4, "seed": 0})).rows
    per_fold = folds.groupby(["split", "label"]).size().unstack()
    assert list(per_fold.index) == [f"fold{k}" for k in range(4)]
    assert (per_fold.max() - per_fold.min()).max() <= 1  # stratified: each class spread evenly


def test_column_split_values_and_validation_from():
    raw = pd.read_json(DATA / "own_intents" / "queries.jsonl", lines=True)
    intents = sorted(raw["intent"].unique())
    values = {intents[0]: "test", intents[1]: "validation"} | {i: "train" for i in intents[2:-1]}  # last: unmapped
    table = load("own_intents", intents_decl(split={"kind": "column", "column": "intent", "values": values}))
    assert table.split_counts() == raw["intent"].map(values).value_counts().sort_index().to_dict()
    assert table.reject_counts() == {"split value is not train, validation or test (column 'intent'; map it under "
                                     "split.values)": int((raw["intent"] == intents[-1]).sum())}
    with pytest.raises(DeclarationError, match="the test split is empty: no accepted row's 'part'"):
        load("own_intents", intents_decl(split={"kind": "column", "column": "part", "values": {"test": "validation"}}))
    table = load("own_loans", loans_decl(split={"kind": "time", "column": "issued", "test_from": "2011-01-01",
                                                "validation_from": "2010-07-01"}))
    dates = pd.to_datetime(raw_loans().set_index("application_id").loc[table.rows["id"], "issued"]).to_numpy()
    expected = np.where(dates >= np.datetime64("2011-01-01"), "test",
                        np.where(dates >= np.datetime64("2010-07-01"), "validation", "train"))
    assert (table.rows["split"].to_numpy() == expected).all()


def test_max_rows_per_split_slices_and_reconciles():
    table = load("own_loans", loans_decl(), max_rows_per_split=10)
    table.check_reconciled()
    assert set(table.split_counts().values()) == {10} and table.n_sliced_out > 0


def test_missing_column_names_file_column_present_and_close_match():
    with pytest.raises(DeclarationError) as info:
        load("own_loans", loans_decl(numeric=["amont", "income"]))
    err = info.value
    assert "'amont'" in err.what and "loans.csv" in err.what
    assert err.where.startswith("data.declared.own_loans.numeric") and str(LOANS) in err.where
    assert "did you mean 'amount'?" in err.fix and "debt_to_income" in err.fix


def test_duplicate_ids_name_the_first_ones():
    with pytest.raises(DeclarationError, match="duplicate id") as info:
        load("own_loans", loans_decl(id="grade", categorical=["home"]))
    assert "'A' in loans.csv" in info.value.what or "'B' in loans.csv" in info.value.what


def test_non_numeric_values_reject_rows_or_refuse_the_file(tmp_path):
    root = copy_root(tmp_path)
    raw = raw_loans()
    raw.loc[[3, 10, 20], "income"] = "n/a"
    raw.to_csv(root / "own_loans" / "loans.csv", sep=";", index=False)
    table = load("own_loans", loans_decl(), root=root)
    reasons = table.reject_counts()
    assert reasons["non-numeric value in numeric column 'income'"] == raw.loc[[3, 10, 20], "status"].isin(
        list(STATUS)).sum()
    with pytest.raises(DeclarationError, match="numeric column 'grade' holds non-numbers") as info:
        load("own_loans", loans_decl(numeric=["grade"], categorical=["home"]))
    assert "categorical" in info.value.fix


def test_image_paths_load_bytes_and_a_missing_file_rejects_the_row(tmp_path):
    from PIL import Image

    root = tmp_path / "own_cards"
    (root / "img").mkdir(parents=True)
    raw = pd.read_json(DATA / "own_intents" / "queries.jsonl", lines=True)
    raw["picture"] = [f"img/{i}.png" for i in range(len(raw))]
    for i in range(len(raw) - 1):  # the last row's file is missing
        Image.new("RGB", (8, 8), (i % 256, 0, 0)).save(root / "img" / f"{i}.png")
    raw.to_json(root / "cards.jsonl", orient="records", lines=True)
    table = load("own_cards", intents_decl(files=["cards.jsonl"], image={"column": "picture"}), root=tmp_path)
    assert table.reject_counts() == {"image file not found (column 'picture')": 1}
    assert table.rows["image"].iloc[0].startswith(b"\x89PNG")
    assert source_specs(DataSection(declared={"own_cards": intents_decl(image={"column": "picture"})})
                        )["own_cards"].modalities == ("text", "image")


def test_bad_declarations_fail_in_validation():
    with pytest.raises(ValidationError, match="is a built-in data set"):
        DataSection(declared={"banking77": intents_decl()})
    with pytest.raises(ValidationError, match="did you mean 'own_intents'"):
        DataSection(declared={"own_intents": intents_decl()}, datasets=["own_intent"])
    with pytest.raises(ValidationError, match="absolute"):
        DataSection(declared={"x": intents_decl(files=["/etc/passwd"])})
    with pytest.raises(ValidationError, match="positive 'bad' is not one of the classes"):
        DataSection(declared={"x": loans_decl(label={"column": "status", "classes": STATUS, "positive": "bad"})})
    with pytest.raises(ValidationError, match="one role only"):
        DataSection(declared={"x": loans_decl(categorical=["grade", "amount"])})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        DataSection(declared={"x": intents_decl(texts=["query"])})


def test_every_declaration_field_is_documented():
    from pydantic import BaseModel

    from actors import declaration

    models = [m for m in vars(declaration).values()
              if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__ == declaration.__name__]
    undocumented = [f"{m.__name__}.{n}" for m in models for n, f in m.model_fields.items() if not f.description]
    assert len(models) >= 8 and undocumented == []


def test_empty_text_rejects_the_row_when_text_is_all_it_has(tmp_path):
    raw = pd.read_json(DATA / "own_intents" / "queries.jsonl", lines=True)
    raw.loc[[0, 5], "query"] = "  "
    (tmp_path / "own_intents").mkdir()
    raw.to_json(tmp_path / "own_intents" / "queries.jsonl", orient="records", lines=True)
    table = load("own_intents", intents_decl(), root=tmp_path)
    assert table.reject_counts() == {"empty text (column 'query')": 2}
    assert list(table.rejected["source"]) == ["queries.jsonl:1", "queries.jsonl:6"]
