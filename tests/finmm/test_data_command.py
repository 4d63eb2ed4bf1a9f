"""`finmm data infer` and `finmm data check` on the real-data slices of tests/actors/sources/data/, through the
CLI in-process (typer's runner; tests/finmm/test_cli.py runs the console script itself); declaration files
named by data.declared.<name>."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from actors.declaration import DatasetDeclaration
from actors.infer import infer_declaration
from actors.settings import DataSection
from actors.sources import load_source
from finmm.cli import app
from finmm.config import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "actors" / "sources" / "data"


def run_cli(*args: str):
    """(exit code, stdout, stderr) of `finmm <args>` with the slices as the data root."""
    result = CliRunner().invoke(app, list(args), env={"FINMM_DATA_DIR": str(DATA), "COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_infer_proposes_a_declaration_that_data_check_accepts(tmp_path):
    code, out, err = run_cli("data", "infer", str(DATA / "own_loans" / "loans.csv"))
    assert code == 0, err
    assert "#   notes: text" in out and "#   amount: numeric" in out
    (name, block), = yaml.safe_load(out).items()
    decl = DatasetDeclaration.model_validate(block)
    assert name == "loans" and decl.folder == "own_loans" and decl.read.delimiter == ";"
    assert decl.id == "application_id" and decl.label.column == "status"
    assert {"amount", "interest_rate", "income"} <= set(decl.numeric) and "grade" in decl.categorical
    assert decl.text == ["loan_title", "notes"] and decl.split.kind == "time" and decl.split.column == "issued"

    (tmp_path / "loans.yaml").write_text(yaml.safe_dump(block))
    (tmp_path / "config.yaml").write_text(f"data:\n  declared:\n    loans: {tmp_path / 'loans.yaml'}\n")
    code, out, err = run_cli("data", "check", "loans", "-c", str(tmp_path / "config.yaml"))
    assert code == 0, err
    table = load_source("loans", DataSection(declared={"loans": decl}), root=DATA)
    assert f"{table.n_read} rows read from 1 file(s) = {len(table.rows)} accepted + 0 rejected" in out
    for split, n in table.split_counts().items():
        assert re.search(rf"│ {split}\s+│ {n}\s+│", out), (split, n)
    for i, cls in enumerate(table.classes):
        assert re.search(rf"│ {re.escape(cls)}\s+│ {i}\s+│", out), cls


def test_check_of_a_missing_column_says_what_where_and_how_to_fix(tmp_path):
    block = {"files": ["loans.csv"], "read": {"delimiter": ";"}, "numeric": ["amont"],
             "label": {"column": "status"}, "split": {"kind": "random"}, "folder": "own_loans"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data": {"declared": {"loans": block}}}))
    code, _, err = run_cli("data", "check", "loans", "-c", str(tmp_path / "config.yaml"))
    assert code == 1
    err = " ".join(err.split())
    assert "error: data set 'loans': column 'amont' is not in loans.csv" in err
    assert "where: data.declared.loans.numeric; file" in err
    assert "how to fix: did you mean 'amount'? Columns present: application_id, amount" in err


def test_a_declaration_file_with_a_typo_names_the_file_and_line(tmp_path):
    block = tmp_path / "intents.yaml"
    block.write_text("files: [queries.jsonl]\ntext: [query]\nlabel: {column: intent, clases: {}}\n"
                     "split: {kind: column, column: part}\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"data:\n  declared:\n    own_intents: {block}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    message = str(info.value)
    assert str(block) in message and "line 3" in message and "did you mean 'label.classes'" in message
    with pytest.raises(ConfigError, match="cannot read the declaration file"):
        load_settings(None, [f"data.declared.own_intents={tmp_path / 'missing.yaml'}"])
    block.write_text(block.read_text().replace("clases", "classes"))
    settings = load_settings(config, ["data.datasets=[own_intents]"])
    assert settings.data.declared["own_intents"].label.column == "intent"


def test_infer_finds_text_and_the_split_column_of_a_jsonl_table():
    proposal = infer_declaration(DATA / "own_intents" / "queries.jsonl", DATA)
    decl = DatasetDeclaration.model_validate(proposal.declaration)
    assert decl.text == ["query"] and decl.label.column == "intent" and len(decl.label.classes) == 10
    assert decl.split.kind == "column" and decl.split.column == "part"
    assert not decl.categorical  # the split column is not a feature


def test_a_declared_task_must_be_a_known_one():
    block = {"files": ["queries.jsonl"], "text": ["query"], "label": {"column": "intent"},
             "split": {"kind": "column", "column": "part"}, "task": "customer_servce"}
    with pytest.raises(ConfigError, match="data.declared.own_intents.task: unknown task 'customer_servce'; did "
                                          "you mean 'customer_service'"):
        load_settings(None, [f"data.declared.own_intents={block}"])
    settings = load_settings(None, [f"data.declared.own_intents={block | {'task': 'customer_service'}}"])
    assert settings.data.declared["own_intents"].task == "customer_service"
