"""Broken copies of the raw data, in tmp folders: every loader either refuses a file with a DataFileError that
names the data set, the file and the problem, or keeps going and accounts for every record (rows read =
accepted + rejected + sliced out, each rejected row with a reason). Nothing is dropped silently.

Each case copies a data set's declared files (links for the untouched ones), breaks one file in one way, and
loads it with the real loader (`actors.sources.load_source`, the first stage of `finmm prepare`). The loader
tests under tests/actors/sources check exact reasons per data set; this matrix checks the contract for every
data set against the same corruptions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reliability_helpers import record

from actors.data_root import resolve_data_root
from actors.settings import DataSection
from actors.sources import SOURCES, DataError, DataFileError, DataRootError, load_source

pytestmark = pytest.mark.timeout(300)

LENDING_ROWS = 1500
"""lending_club is 30 MB: its cases start from the header and first rows (a real, smaller, intact file)."""


@pytest.fixture(scope="module")
def data_root() -> Path:
    try:
        return resolve_data_root(None)  # honours $FINMM_DATA_DIR
    except DataRootError as e:  # like tests/actors/sources: a missing data root is a failure, not a skip
        pytest.fail(f"raw data not available: {e}")


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def truncated(raw: bytes) -> bytes:
    return raw[: int(len(raw) * 0.6)]


def utf16(raw: bytes) -> bytes:
    return _decode(raw).encode("utf-16")


def latin1_mojibake(raw: bytes) -> bytes:
    """Latin-1 bytes where UTF-8 was expected (and non-latin text replaced): a wrong encoding, not garbage."""
    return (_decode(raw) + "\ncafé crème à la mode\n").encode("latin-1", errors="replace")


def garbage(raw: bytes) -> bytes:
    return bytes(range(256)) * 8


def empty(raw: bytes) -> bytes:
    return b""


def missing_field(raw: bytes, column: str | None = None) -> bytes:
    """Take one field away: the header's `column` renamed (CSV), a key or entry dropped from the first records
    (JSON), or the last field cut from the first lines (headerless text: space- or '@'-separated)."""
    text = _decode(raw)
    if text.lstrip().startswith("["):
        data = json.loads(text)
        if all(isinstance(rec, str) for rec in data):
            data = data[5:]
        for rec in data[:5]:
            if isinstance(rec, dict) and rec:
                rec.pop(next(iter(rec)))
            elif isinstance(rec, list) and rec:
                rec.pop()
        return json.dumps(data, ensure_ascii=False).encode("utf-8")
    lines = text.splitlines(keepends=True)
    if column is not None:
        header = lines[0].rstrip("\r\n")
        assert column in header.split(","), (column, header[:200])
        lines[0] = ",".join("renamed_column" if c == column else c for c in header.split(",")) + \
            lines[0][len(header):]
    else:
        for i in range(min(5, len(lines))):
            body = lines[i].rstrip("\r\n")
            cut = max(body.rfind(" "), body.rfind("@"))
            lines[i] = body[:cut] + lines[i][len(body):] if cut > 0 else lines[i]
    try:
        raw.decode("utf-8")
        return "".join(lines).encode("utf-8")
    except UnicodeDecodeError:
        return "".join(lines).encode("latin-1")


CORRUPTIONS = {"truncated": truncated, "utf16": utf16, "latin1": latin1_mojibake, "garbage": garbage,
               "empty": empty, "missing_field": missing_field}
REQUIRED_COLUMN = {"lending_club_2007_2011.csv": "loan_status", "test.csv": "category"}
"""The header column the missing_field corruption renames, for files with a header."""
CASES = [
    ("german_credit", "german.data", list(CORRUPTIONS)),
    ("lending_club", "lending_club_2007_2011.csv", list(CORRUPTIONS)),
    ("financial_phrasebank", "Sentences_50Agree.txt", ["truncated", "utf16", "garbage", "empty", "missing_field"]),
    ("fincuge_finfe", "eval_list.json", list(CORRUPTIONS)),
    ("fincuge_finnl", "eval_list.json", ["truncated", "utf16", "missing_field"]),
    ("banking77", "test.csv", list(CORRUPTIONS)),
    ("banking77", "categories.json", ["truncated", "missing_field"]),
    ("stocknet", "price/raw/AAPL.csv", ["truncated"]),
]
KNOWN_GAPS: dict[tuple[str, str, str], str] = {}
"""Cases where a loader falls short of the contract; strict xfail, so a fix turns them into failures to remove."""
PARAMS = [pytest.param(d, f, c, id=f"{d}:{f}:{c}",
                       marks=[pytest.mark.xfail(reason=KNOWN_GAPS[(d, f, c)], strict=True)]
                       if (d, f, c) in KNOWN_GAPS else [])
          for d, f, cs in CASES for c in cs]
OUTCOMES: dict[str, str] = {}


def _copy(data_root: Path, name: str, tmp: Path) -> Path:
    for rel in SOURCES[name].required_files(data_root):
        dst = tmp / name / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        src = (data_root / name / rel).resolve()
        if name == "lending_club":
            with open(src, "rb") as fh:
                dst.write_bytes(b"".join(next(fh) for _ in range(LENDING_ROWS + 1)))
        else:
            dst.symlink_to(src)
    return tmp


def _check_table(table, name: str) -> None:
    assert table.n_read == len(table.rows) + len(table.rejected) + table.n_sliced_out
    if len(table.rejected):
        reasons = table.rejected["reason"]
        assert reasons.notna().all() and (reasons.astype(str).str.len() > 0).all()
        assert table.rejected["source"].notna().all()


@pytest.mark.parametrize("name,rel,corruption", PARAMS)
def test_broken_copy_is_refused_or_fully_accounted_for(data_root, tmp_path, name, rel, corruption):
    root = _copy(data_root, name, tmp_path / "intact")
    baseline = load_source(name, DataSection(), root=root)
    broken = _copy(data_root, name, tmp_path / "broken")
    target = broken / name / rel
    raw = target.read_bytes()
    target.unlink()
    if corruption == "missing_field":
        target.write_bytes(missing_field(raw, REQUIRED_COLUMN.get(Path(rel).name)))
    else:
        target.write_bytes(CORRUPTIONS[corruption](raw))
    try:
        table = load_source(name, DataSection(), root=broken)
    except DataFileError as exc:
        assert exc.dataset == name and exc.path.name == Path(rel).name and exc.problem
        assert name in str(exc) and Path(rel).name in str(exc)
        OUTCOMES[f"{name}:{rel}:{corruption}"] = f"DataFileError: {exc.problem[:80]}"
        return
    except DataError as exc:  # a reconciliation failure is loud too, but must not happen
        pytest.fail(f"{name}/{rel} {corruption}: counts did not reconcile: {exc}")
    OUTCOMES[f"{name}:{rel}:{corruption}"] = (
        f"loaded: {len(table.rows)} accepted, {len(table.rejected)} rejected ({', '.join(table.reject_counts())})")
    _check_table(table, name)
    assert table.n_read > 0, "an empty file must be refused, not read as a data set of 0 rows"
    if corruption == "missing_field":  # the same records, so the same count read; the damaged ones rejected
        assert table.n_read == baseline.n_read
        assert len(table.rejected) > len(baseline.rejected)
    assert len(table.rejected) >= len(baseline.rejected) or table.n_read < baseline.n_read


def test_record_outcomes():
    """Runs after the matrix: leaves the outcome per case for the reliability report."""
    record("data_safety", cases=len(PARAMS), outcomes=dict(OUTCOMES))
