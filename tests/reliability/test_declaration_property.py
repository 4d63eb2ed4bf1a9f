"""Hypothesis over the data-set declarations (issue 18, item 1): whatever the user's table holds and whatever
their YAML block says, a declared data set either loads with every row accounted for (read = accepted +
rejected, each reject with its reason) or is refused before any work with a `DataError` or a pydantic
`ValidationError` that names the data set or the field. Never a bare pandas, pyarrow or Python error. No Ray.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from actors.settings import DataSection
from actors.sources import DataError, load_source

NAME = "fuzzed"
COLUMNS = ["row_id", "note", "amount", "kind", "outcome", "part", "day"]
CLASSES = {"paid": "good", "late": "bad"}

# A cell as a user's export might hold it: numbers, dates, words, blanks, junk, any Unicode except NUL and
# lone surrogates (a CSV file cannot carry those: the writer refuses them, below).
cell = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "NA", "null", "1e309", "-0", "0x10", "1,5", "2011-01-01", "2011-13-45", "paid",
                     "late", "train", "test", "validation", "Paid "]),
    st.dates().map(str),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30),
)


@st.composite
def tables(draw) -> list[dict[str, str]]:
    """Up to 40 rows; the label and split columns are mostly valid values so that both paths get exercised."""
    n = draw(st.integers(0, 40))
    rows = []
    for i in range(n):
        row = {c: draw(cell) for c in COLUMNS}
        if draw(st.booleans()):
            row["outcome"] = draw(st.sampled_from(list(CLASSES)))
        if draw(st.booleans()):
            row["part"] = draw(st.sampled_from(["train", "validation", "test"]))
        if draw(st.booleans()):
            row["amount"] = str(draw(st.integers(0, 10**6)))
        if draw(st.booleans()):
            row["row_id"] = f"r{i}"
        if draw(st.booleans()):
            row["day"] = str(draw(st.dates()))
        rows.append(row)
    return rows


split_rules = st.one_of(
    st.just({"kind": "column", "column": "part"}),
    st.builds(lambda t: {"kind": "time", "column": "day", "test_from": str(t)}, st.dates()),
    st.builds(lambda b: {"kind": "hash", "column": "note", "buckets": b}, st.integers(2, 20)),
    st.builds(lambda s: {"kind": "random", "seed": s}, st.integers(0, 3)),
    st.builds(lambda s, v, t: {"kind": "random", "seed": s, "fractions": {"train": 1 - v - t, "validation": v,
                                                                          "test": t}},
              st.integers(0, 3), st.floats(0, 0.4), st.floats(0.05, 0.4)),
    st.builds(lambda s, k: {"kind": "kfold", "folds": k, "seed": s}, st.integers(0, 3), st.integers(2, 5)),
)


@st.composite
def declarations(draw) -> dict:
    """Mostly well-formed blocks with drawn roles, split rules, label codings and read settings; sometimes a
    wrong column name, a wrong type or an unknown key."""
    text = draw(st.sampled_from([[], ["note"], ["note", "kind"]]))
    decl = {
        "files": ["table.csv"],
        "text": text,
        "numeric": draw(st.sampled_from([[], ["amount"], ["amount", "day"]])),
        "categorical": [] if "kind" in text else draw(st.sampled_from([[], ["kind"]])),
        "label": {"column": "outcome", **draw(st.sampled_from([{"classes": dict(CLASSES), "positive": "bad"},
                                                               {"classes": dict(CLASSES)}, {}]))},
        "split": draw(split_rules),
    }
    if draw(st.booleans()):
        decl["id"] = "row_id"
    if draw(st.integers(0, 4)) == 0:  # a mistake a user makes
        mistake = draw(st.sampled_from(["column", "type", "key", "role", "empty"]))
        if mistake == "column":
            decl["numeric"] = [*decl["numeric"], "amout"]
        elif mistake == "type":
            decl["text"] = "note"
        elif mistake == "key":
            decl["lable"] = decl["label"]
        elif mistake == "role":
            decl["categorical"] = ["outcome"]
        else:
            decl["files"] = []
    return decl


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    buf = io.StringIO()
    # every field quoted: a bare \r in an unquoted field is a line break to any CSV reader
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode("utf-8"))


def check_outcome(root: Path, decl: dict, n_rows: int) -> str:
    """Load `decl` over `root`; assert the contract; return which way it went."""
    try:
        section = DataSection(declared={NAME: decl})
    except ValidationError as e:
        assert e.errors(), e
        return "refused in validation"
    try:
        table = load_source(NAME, section, root=root)
    except DataError as e:
        message = str(e)
        assert NAME in message or "table.csv" in message, message  # names the data set or the file
        return "refused with a DataError"
    table.check_reconciled()
    assert table.n_read == n_rows
    assert len(table.rows) + len(table.rejected) == n_rows
    assert table.rows["label"].between(0, len(table.classes) - 1).all()
    assert table.rows["id"].is_unique
    if len(table.rejected):
        assert table.rejected["reason"].astype(str).str.len().gt(0).all()
    return "loaded"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(rows=tables(), decl=declarations())
def test_a_declared_table_loads_accounted_for_or_is_refused_clearly(tmp_path_factory, rows, decl):
    root = tmp_path_factory.mktemp("root")
    (root / NAME).mkdir()
    write_csv(root / NAME / "table.csv", rows)
    event(check_outcome(root, decl, len(rows)))  # --hypothesis-show-statistics counts the outcomes


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=400), decl=declarations())
def test_arbitrary_bytes_as_the_declared_file_are_refused_or_accounted_for(tmp_path_factory, raw, decl):
    root = tmp_path_factory.mktemp("root")
    (root / NAME).mkdir()
    (root / NAME / "table.csv").write_bytes(b"row_id,note,amount,kind,outcome,part,day\n" + raw)
    try:
        section = DataSection(declared={NAME: decl})
    except ValidationError:
        event("refused in validation")
        return
    try:
        table = load_source(NAME, section, root=root)
    except DataError as e:
        assert NAME in str(e) or "table.csv" in str(e), str(e)
        event("refused with a DataError")
        return
    table.check_reconciled()
    event("loaded")


def test_the_properties_see_both_outcomes(tmp_path):
    """The strategies are not vacuous: a valid block over a valid table loads, and a misspelt column is
    refused naming the data set."""
    (tmp_path / NAME).mkdir()
    rows = [{"row_id": f"r{i}", "note": f"note {i}", "amount": str(i), "kind": "a", "outcome": "paid" if i % 3
             else "late", "part": ["train", "validation", "test"][i % 3], "day": "2011-01-01"} for i in range(30)]
    write_csv(tmp_path / NAME / "table.csv", rows)
    good = {"files": ["table.csv"], "text": ["note"], "numeric": ["amount"], "id": "row_id",
            "label": {"column": "outcome", "classes": dict(CLASSES), "positive": "bad"},
            "split": {"kind": "column", "column": "part"}}
    assert check_outcome(tmp_path, good, 30) == "loaded"
    assert check_outcome(tmp_path, {**good, "numeric": ["amout"]}, 30) == "refused with a DataError"
    assert check_outcome(tmp_path, {**good, "lable": {}}, 30) == "refused in validation"
    # found by the bytes property: a file with a header and no rows under a time split raised a numpy TypeError
    write_csv(tmp_path / NAME / "table.csv", [])
    assert check_outcome(tmp_path, {**good, "split": {"kind": "time", "column": "day", "test_from": "2011-01-01"}},
                         0) == "refused with a DataError"
