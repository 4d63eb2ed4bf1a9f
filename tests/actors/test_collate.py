"""The tabular feature space of a batch: a row holds and attends to exactly its own data set's features,
checked through the model's attention mask on real Lending Club and German Credit rows. No Ray."""

from __future__ import annotations

import pytest
import torch

from actors.collate import BatchLayout, collate
from actors.settings import DataSection
from actors.tabular import TabularState, feature_columns
from model.settings import ModelSection
from model.task import FinMMForTask


def _state(table) -> TabularState:
    train = table.rows[table.rows["split"] == "train"].head(400)
    numeric, categorical = feature_columns(train.columns)
    return TabularState.fit(train, numeric, categorical, DataSection())


@pytest.fixture(scope="module")
def credit():
    """Real rows and fitted states of both tabular data sets."""
    from actors.data_root import resolve_data_root
    from actors.sources import load_source

    root = resolve_data_root(None)
    tables = {name: load_source(name, DataSection(), root=root) for name in ("lending_club", "german_credit")}
    return {name: (t.rows, _state(t)) for name, t in tables.items()}


def _rows(table, state: TabularState, n: int = 6) -> dict:
    out = state.transform(table.head(n))
    return {"tab_numeric": list(out.numeric), "tab_numeric_missing": list(out.missing),
            "tab_categorical": list(out.categorical)}


def _model(layout: BatchLayout) -> FinMMForTask:
    section = ModelSection(preset="tiny", init_from_minilm=False, dropout=0.0, heads={"credit_risk": {}})
    return FinMMForTask(section.to_finmm_config(30522, layout.tabular_schema())).eval()


def test_a_lending_club_row_attends_to_its_own_features_only(credit):
    layout = BatchLayout()
    for name, (_, state) in credit.items():
        layout.add_tabular(name, state)
    lc_rows, lc_state = credit["lending_club"]
    batch = collate(_rows(lc_rows, lc_state), layout, "lending_club")
    model = _model(layout)
    with torch.no_grad():
        out = model.finmm(batch)
    names = model.config.tabular.feature_names
    own = torch.tensor([n.startswith("lending_club.") for n in names])
    seg = out.segments["tabular"]
    assert torch.equal(out.mask[:, seg], own.expand(len(lc_rows.head(6)), -1))  # the model's own mask
    assert own.sum() == len(lc_state.feature_names) < len(names)

    # what a foreign slot holds cannot reach the row: change every German value and the output is identical
    changed = {k: dict(v) for k, v in batch.items()}
    tab = changed["tabular"]
    n_num = len(model.config.tabular.numeric_features)
    foreign_num, foreign_cat = ~own[:n_num], ~own[n_num:]
    tab["numeric"] = torch.where(foreign_num, torch.full_like(tab["numeric"], 3.0), tab["numeric"])
    tab["numeric_missing"] = tab["numeric_missing"] & ~foreign_num
    modes = torch.tensor(model.config.tabular.categorical_reference).expand_as(tab["categorical"])
    tab["categorical"] = torch.where(foreign_cat, modes, tab["categorical"])  # another valid category
    with torch.no_grad():
        again = model.finmm(changed)
    torch.testing.assert_close(again.pooled, out.pooled)


def test_a_run_over_one_data_set_has_exactly_its_features(credit):
    lc_rows, lc_state = credit["lending_club"]
    layout = BatchLayout()
    layout.add_tabular("lending_club", lc_state)
    schema = layout.tabular_schema()
    assert schema["numeric_features"] == [f"lending_club.{c}" for c in lc_state.numeric_columns]
    assert schema["numeric_bins"] == lc_state.bins and schema["numeric_reference"] == lc_state.medians
    batch = collate(_rows(lc_rows, lc_state), layout, "lending_club")
    assert batch["tabular"]["feature_mask"].all()
    assert batch["tabular"]["numeric"].shape[1] + batch["tabular"]["categorical"].shape[1] == len(
        lc_state.feature_names)
