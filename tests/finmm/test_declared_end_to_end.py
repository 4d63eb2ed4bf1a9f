"""Issue 16's "Done when": a data set finmm has never seen goes prepare -> finetune -> evaluate -> a served
endpoint answering over HTTP, from one YAML block and no Python of its own.

(a) a credit data set: German Credit (real, $FINMM_DATA_DIR/german_credit/german.data) written out as a CSV
    with its own column names, decoded values, its own label coding and a sentence per applicant, feeding
    the built-in credit_risk task: /v1/credit-risk then takes that CSV's own fields;
(b) a text classification data set with its own classes: the Banking77 slice of tests/actors/sources/data
    (10 intents) under other class names, as a declared multi-class task served at /v1/support-intents.

Real local Ray, real Ray Train + DeepSpeed (2 CPU workers, tiny preset), real Serve on 127.0.0.1.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from rich.console import Console

from actors.data_root import resolve_data_root
from actors.pipeline import prepare
from cluster.trainer import finetune
from finmm.config import load_settings
from finmm.evaluate_command import report_dir, run_evaluate

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

OWN_DATA = Path(__file__).parents[1] / "actors" / "sources" / "data"
CHECKING = {"A11": "below 0 DM", "A12": "0 to 200 DM", "A13": "200 DM or more", "A14": "no checking account"}
HISTORY = {"A30": "no credits taken", "A31": "all paid back here", "A32": "paid back duly so far",
           "A33": "delays in the past", "A34": "critical account"}
PURPOSE = {"A40": "new car", "A41": "used car", "A42": "furniture", "A43": "radio or television",
           "A44": "appliances", "A45": "repairs", "A46": "education", "A47": "vacation", "A48": "retraining",
           "A49": "business", "A410": "other"}
SAVINGS = {"A61": "below 100 DM", "A62": "100 to 500 DM", "A63": "500 to 1000 DM", "A64": "1000 DM or more",
           "A65": "none known"}
EMPLOYED = {"A71": "unemployed", "A72": "under a year", "A73": "1 to 4 years", "A74": "4 to 7 years",
            "A75": "7 years or more"}
HOUSING = {"A151": "rents", "A152": "owns", "A153": "lives for free"}

CREDIT_BLOCK = """
data:
  declared:
    own_german:
      title: German applicants, renamed and decoded
      files: [applicants.csv]
      text: [summary]
      numeric: [months, amount_dm, installment_pct, age]
      categorical: [checking_account, history, purpose, savings, employed_since, housing]
      id: applicant
      label:
        column: outcome
        classes: {performing: repaid, non-performing: defaulted}
        positive: defaulted
      split: {kind: random, fractions: {train: 0.7, validation: 0.15, test: 0.15}, seed: 0}
      task: credit_risk
"""
"""The one YAML block a user writes for (a)."""

INTENTS_BLOCK = """
data:
  declared:
    own_intents:
      folder: own_intents
      files: [queries.jsonl]
      text: [query]
      label:
        column: intent
        classes: {card_arrival: card_delivery, lost_or_stolen_card: card_missing, exchange_rate: fx_rate,
                  top_up_failed: top_up_problem, balance_not_updated_after_bank_transfer: transfer_pending,
                  cash_withdrawal_charge: atm_fee, pin_blocked: pin_locked, declined_transfer: transfer_refused,
                  request_refund: refund, change_pin: new_pin}
      split: {kind: column, column: part}
      task: support_intents
  tasks:
    support_intents: {kind: multi_class, endpoint: support-intents, title: Support intents}
"""
"""The YAML a user writes for (b): the data set and its task."""


def german_csv(folder: Path) -> Path:
    """German Credit's 1,000 applicants as a user's own CSV: other column names, decoded values, 'performing' /
    'non-performing' instead of 1/2, and a sentence per applicant."""
    raw = pd.read_csv(resolve_data_root(None) / "german_credit" / "german.data", sep=" ", header=None)
    out = pd.DataFrame({
        "applicant": [f"APP-{i:04d}" for i in range(1, len(raw) + 1)],
        "checking_account": raw[0].map(CHECKING), "months": raw[1], "history": raw[2].map(HISTORY),
        "purpose": raw[3].map(PURPOSE), "amount_dm": raw[4], "savings": raw[5].map(SAVINGS),
        "employed_since": raw[6].map(EMPLOYED), "installment_pct": raw[7], "age": raw[12],
        "housing": raw[14].map(HOUSING), "outcome": raw[20].map({1: "performing", 2: "non-performing"}),
    })
    out["summary"] = [f"Applicant aged {r.age} asks for {r.amount_dm} DM over {r.months} months for "
                      f"{r.purpose}; employed {r.employed_since}, {r.housing} their home, savings {r.savings}."
                      for r in out.itertuples()]
    assert out.notna().all().all()
    folder.mkdir(parents=True)
    out.to_csv(folder / "applicants.csv", index=False)
    return folder / "applicants.csv"


def _settings(tmp_path: Path, block: str, root: Path):
    """ray_config.yaml = the user's block + where things go + the tiny 2-worker CPU run of the smoke tests."""
    config = yaml.safe_load(block)
    config["data"] |= {"root": str(root), "output_dir": str(tmp_path / "prepared")}
    config |= {
        "model": {"preset": "tiny", "init_from_minilm": False, "dropout": 0.0},
        "cluster": {"storage_path": str(tmp_path / "runs")},
        "finetune": {"output_dir": str(tmp_path / "finetune"), "batch_size": 8, "max_steps": 40,
                     "learning_rate": 1e-3, "checkpoint_every": 40, "log_every": 10, "max_failures": 0},
    }
    path = tmp_path / "ray_config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return load_settings(path)


def _serve(model_dir: Path):
    import socket

    from serve.ops import deploy, serve_config
    from serve.settings import ServeSection

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    deploy(serve_config(ServeSection(http={"host": "127.0.0.1", "port": port}), model_dir))
    return f"http://127.0.0.1:{port}"


def _report(settings, task: str) -> dict:
    return json.loads((report_dir(settings) / f"{task}.json").read_text())


def test_a_new_credit_csv_goes_from_yaml_to_a_served_endpoint(ray_cluster, tmp_path):
    from ray import serve

    german_csv(tmp_path / "data" / "own_german")
    settings = _settings(tmp_path, CREDIT_BLOCK, tmp_path / "data")
    [summary] = prepare(settings.data, ["own_german"], vocab_datasets=[])
    assert summary.n_read == 1000 and sum(summary.splits.values()) == 1000
    assert summary.splits == {"test": 150, "train": 700, "validation": 150}

    outcome = finetune(settings, ["credit_risk"], name="own-german")
    state = json.loads((outcome.model_dir / "preprocessing_state.json").read_text())
    assert state["tasks"]["credit_risk"]["datasets"] == ["own_german"]  # lending_club is not prepared here
    assert state["tasks"]["credit_risk"]["classes"] == ["repaid", "defaulted"]

    assert run_evaluate(settings, "credit_risk", Console(), datasets=["own_german"]) == 0
    entry = _report(settings, "credit_risk")["datasets"]["own_german"]
    models = [b["model"] for b in entry["baselines"]]
    assert models == ["logistic regression (tabular, one-hot + standardise)", "LightGBM (tabular)",
                      "TF-IDF (word 1-2-grams) + logistic regression"]
    assert all(0.5 < b["headline"]["auc"] <= 1 for b in entry["baselines"][:2])  # measured ~0.75-0.8
    assert entry["finmm"]["status"] == "measured" and "auc" in entry["finmm"]["headline"]
    assert {"credit_risk_own_german_roc.png", "credit_risk_own_german_calibration.png"} <= set(entry["plots"])

    url = _serve(outcome.model_dir)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            body = {"features": {"months": 24, "amount_dm": 2500, "installment_pct": 3, "age": 35,
                                 "checking_account": "no checking account", "purpose": "used car",
                                 "savings": "none known", "housing": "owns"},
                    "text": "Applicant aged 35 asks for 2500 DM over 24 months for used car."}
            answer = client.post("/v1/credit-risk", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["dataset"] == "own_german"
            assert 0 <= answer.json()["probability_of_default"] <= 1
            assert {r["feature"] for r in answer.json()["reason_codes"]} <= set(body["features"]) | {
                "history", "employed_since"}
            wrong = client.post("/v1/credit-risk", json={"features": {"loan_amnt": 1000}})
            assert wrong.status_code == 422 and "loan_amnt" in wrong.text
            openapi = client.get("/openapi.json").json()["components"]["schemas"]
            assert {"months", "amount_dm", "purpose", "housing"} <= set(openapi["CreditFeatures"]["properties"])
            served = client.get("/v1/models").json()["endpoints"]
            assert served[0]["path"] == "/v1/credit-risk"
            assert "amount_dm" in served[0]["datasets"]["own_german"]["features"]
    finally:
        serve.shutdown()


def test_b_a_text_data_set_with_its_own_classes_becomes_a_declared_task(ray_cluster, tmp_path):
    from ray import serve

    settings = _settings(tmp_path, INTENTS_BLOCK, OWN_DATA)
    [summary] = prepare(settings.data, ["own_intents"], vocab_datasets=[])
    assert summary.splits == {"test": 80, "train": 240}  # the file's own split column, no validation rows

    outcome = finetune(settings, ["support_intents"], name="own-intents")
    config = json.loads((outcome.model_dir / "config.json").read_text())
    assert config["heads"] == {"support_intents": {"kind": "classification", "num_classes": 10}}

    assert run_evaluate(settings, "support_intents", Console()) == 0
    entry = _report(settings, "support_intents")["datasets"]["own_intents"]
    tfidf = entry["baselines"][0]
    assert tfidf["model"] == "TF-IDF (word 1-2-grams) + logistic regression"
    assert tfidf["headline"]["accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert entry["finmm"]["status"] == "measured" and "accuracy" in entry["finmm"]["headline"]
    assert entry["classes"][0] == "card_delivery"

    url = _serve(outcome.model_dir)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            answer = client.post("/v1/support-intents", json={"query": "my new card still has not arrived"})
            assert answer.status_code == 200, answer.text
            result = answer.json()
            assert result["task"] == "support_intents" and result["dataset"] == "own_intents"
            assert result["label"] in entry["classes"] and set(result["probabilities"]) == set(entry["classes"])
            assert abs(sum(result["probabilities"].values()) - 1) < 1e-4
            assert client.post("/v1/support-intents", json={"text": "hello"}).status_code == 422
            openapi = client.get("/openapi.json").json()
            assert "/v1/support-intents" in openapi["paths"]
            assert "query" in openapi["components"]["schemas"]["SupportIntentsRequest"]["properties"]
            served = {e["path"]: e for e in client.get("/v1/models").json()["endpoints"]}
            assert served["/v1/support-intents"]["datasets"]["own_intents"]["text"] == ["query"]
            assert served["/v1/support-intents"]["classes"] == entry["classes"]
            # the built-in endpoints whose heads this bundle lacks say so
            assert client.post("/v1/sentiment", json={"text": "fine"}).status_code == 503
    finally:
        serve.shutdown()


LOANS_BLOCK = """
    own_loans:
      files: [loans.csv]
      read: {delimiter: ";"}
      text: [loan_title, notes]
      numeric: [amount, interest_rate, income, debt_to_income]
      categorical: [term_months, grade, home, purpose, state]
      id: application_id
      label: {column: status, classes: {Fully Paid: repaid, Charged Off: default}, positive: default}
      split: {kind: time, column: issued, test_from: 2011-01-01}
      task: credit_risk
"""
"""A second credit data set (tests/actors/sources/data/own_loans: a Lending Club slice, its own columns)."""


def test_c_a_bundle_of_two_credit_data_sets_asks_which_and_says_which(ray_cluster, tmp_path):
    import shutil

    from ray import serve

    german_csv(tmp_path / "data" / "own_german")
    shutil.copytree(OWN_DATA / "own_loans", tmp_path / "data" / "own_loans")
    settings = _settings(tmp_path, CREDIT_BLOCK + LOANS_BLOCK, tmp_path / "data")
    prepare(settings.data, ["own_german", "own_loans"], vocab_datasets=[])

    outcome = finetune(settings, ["credit_risk"], name="two-credit")
    metrics = [json.loads(line) for line in (outcome.run_dir / "metrics.jsonl").read_text().splitlines()]
    state = json.loads((outcome.model_dir / "preprocessing_state.json").read_text())
    assert state["tasks"]["credit_risk"]["datasets"] == ["own_german", "own_loans"]
    assert state["tasks"]["credit_risk"]["dataset_classes"] == {"own_german": ["repaid", "defaulted"],
                                                                "own_loans": ["repaid", "default"]}
    logged = set().union(*(m.keys() for m in metrics))  # one stream per tabular data set, one head
    assert {"credit_risk-own_german", "credit_risk-own_loans"} <= logged

    url = _serve(outcome.model_dir)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            german = client.post("/v1/credit-risk", json={"dataset": "own_german", "features": {"months": 24}})
            loans = client.post("/v1/credit-risk", json={"dataset": "own_loans",
                                                         "features": {"amount": 5000, "grade": "B"}})
            assert (german.status_code, loans.status_code) == (200, 200), (german.text, loans.text)
            assert german.json()["dataset"] == "own_german" and loans.json()["dataset"] == "own_loans"
            unnamed = client.post("/v1/credit-risk", json={"features": {"months": 24}})
            assert unnamed.status_code == 422 and "say which one in the `dataset` field" in unnamed.text
            other = client.post("/v1/credit-risk", json={"dataset": "own_nope", "features": {"months": 24}})
            assert other.status_code == 422 and "'own_nope' is not a data set this endpoint serves" in other.text
            assert "own_german" in other.text and "own_loans" in other.text
            crossed = client.post("/v1/credit-risk", json={"dataset": "own_loans", "features": {"months": 24}})
            assert crossed.status_code == 422 and "months" in crossed.text
            body = client.get("/openapi.json").json()["paths"]["/v1/credit-risk"]["post"]["requestBody"]
            schema = body["content"]["application/json"]["schema"]
            assert set(schema["discriminator"]["mapping"]) == {"own_german", "own_loans"}
            served = client.get("/v1/models").json()["endpoints"][0]["datasets"]
            assert "months" in served["own_german"]["features"] and "grade" in served["own_loans"]["features"]
    finally:
        serve.shutdown()
