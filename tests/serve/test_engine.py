"""Serving core without Ray Serve: cross-task batching, bf16 tolerance, conversation store, config building."""

from __future__ import annotations

import time

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.timeout(300)

BARS = [[10 + i, 11 + i, 9 + i, 10.5 + i, 1000 + 10 * i] for i in range(10)]


@pytest.fixture(scope="module")
def engine(model_bundle):
    import torch

    from serve.engine import Engine

    torch.set_num_threads(1)
    return Engine(model_bundle, bf16=False)


def _rows(pre):
    return [pre.text_row("Profits rose sharply"), pre.credit_row({"loan_amnt": 10000, "grade": "B"}, None, None),
            pre.stock_row(BARS, ["news"], None), pre.text_row("I lost my card")]


HEADS = ["sentiment", "credit_risk", "stock_movement", "intent"]


def test_mixed_task_batch_equals_single_rows(engine):
    rows = _rows(engine.pre)
    together = engine.forward(rows, HEADS)
    for row, head, joint in zip(rows, HEADS, together, strict=True):
        alone = engine.forward([row], [head])[0]
        np.testing.assert_allclose(joint["probs"], alone["probs"], atol=1e-5)


def test_queries_of_mixed_lengths_bucketed_equal_single_queries(engine):
    from serve.engine import forward_groups
    from serve.preprocess import Query

    pre = engine.pre
    texts = ["Profits rose", "Shares fell " * 30, "Outlook unchanged", "Revenue beat the forecast " * 12]
    queries = [Query(pre.text_row(t), ("sentiment",)) for t in texts]
    queries.append(Query(pre.credit_row({"loan_amnt": 10000, "grade": "B"}, None, None), ("credit_risk",)))
    queries.append(Query(pre.text_row("I lost my card"), ("intent", "sentiment")))
    groups = forward_groups(queries)
    assert sorted(i for g in groups for i in g) == list(range(len(queries)))
    group_of = {i: n for n, g in enumerate(groups) for i in g}
    assert group_of[0] == group_of[2] and group_of[1] == group_of[3]  # alike lengths share a forward ...
    assert len({group_of[0], group_of[1], group_of[4]}) == 3  # ... long texts and credit rows each apart
    for g in groups:  # a forward pads to at most twice its shortest text
        lengths = [len(queries[i].row.columns.get("input_ids", [])) for i in g]
        assert max(lengths) <= 2 * max(min(lengths), 1), lengths
    together = engine.infer(queries)
    for q, joint in zip(queries, together, strict=True):
        alone = engine.infer([q])[0]
        assert set(joint["heads"]) == set(q.heads)
        for head in q.heads:
            np.testing.assert_allclose(joint["heads"][head]["probs"], alone["heads"][head]["probs"], atol=1e-5)
    assert together[5]["heads"]["intent"]["embedding"].shape[0] > 0  # both heads, one forward


def test_grad_x_input_in_the_forward_equals_model_explain(model_bundle):
    import torch

    from model.explain import explain
    from serve.engine import Engine, collate_rows
    from serve.preprocess import Query

    eng = Engine(model_bundle, bf16=False, explain_method="grad_x_input")
    pre = eng.pre
    rows = [pre.text_row("Profits rose sharply this quarter"),
            pre.credit_row({"loan_amnt": 30000, "grade": "G"}, "title: car loan", None)]
    heads = ["sentiment", "credit_risk"]
    out = eng.infer([Query(r, (h,), h) for r, h in zip(rows, heads, strict=True)], bucket=False)
    for i, (row, head) in enumerate(zip(rows, heads, strict=True)):
        alone = eng.forward([row], [head])[0]
        np.testing.assert_allclose(out[i]["heads"][head]["probs"], alone["probs"], atol=1e-5)
        batch = collate_rows([row], eng.layout)
        exp = explain(eng.model, batch, head, method="grad_x_input")
        for m, t in exp.tokens.items():
            assert abs(out[i]["attribution"]["modalities"][m] - float(t[0].sum())) < 1e-4, (head, m)
    words = dict(out[0]["attribution"]["words"])
    assert list(words) == ["profits", "rose", "sharply", "this", "quarter"]
    ref = eng.attribute([rows[1]], "credit_risk")[0]["tabular"]
    got = out[1]["attribution"]["tabular"]
    assert got.keys() == ref.keys()
    torch.testing.assert_close(torch.tensor(list(got.values())), torch.tensor(list(ref.values())), atol=1e-4,
                               rtol=1e-4)


def test_bf16_answers_match_fp32(engine, model_bundle):
    from serve.engine import Engine, bf16_supported

    if not bf16_supported():
        pytest.skip("no bf16 on this CPU")
    fast = Engine(model_bundle, bf16=True)
    assert fast.bf16
    rows = _rows(engine.pre) + [engine.pre.text_row(t) for t in ("利润大幅下降", "Shares fell", "Outlook unchanged")]
    heads = HEADS + ["sentiment"] * 3
    for a, b in zip(engine.forward(rows, heads), fast.forward(rows, heads), strict=True):
        assert np.abs(a["probs"] - b["probs"]).max() < 0.05  # stated tolerance: |dp| < 0.05 ...
        assert np.argmax(np.atleast_1d(a["probs"])) == np.argmax(np.atleast_1d(b["probs"]))  # ... same argmax


def test_reason_codes_only_name_served_features(engine):
    row = engine.pre.credit_row({"loan_amnt": 30000, "grade": "G"}, None, None)
    attr = engine.attribute([row], "credit_risk")[0]
    assert attr["tabular"] and all(k.startswith("lending_club.") for k in attr["tabular"])
    assert "tabular" in attr["modalities"]


def test_conversation_store_lru_and_ttl():
    from serve.deployments import ConversationStore

    store = ConversationStore.func_or_class(max_items=2, ttl_s=0.2)
    store.put("a", {"intent": 1, "confidence": 0.9, "turn": 1})
    store.put("b", {"intent": 2, "confidence": 0.9, "turn": 1})
    store.put("c", {"intent": 3, "confidence": 0.9, "turn": 1})
    assert store.get("a") is None and store.get("b")["intent"] == 2 and store.size() == 2
    time.sleep(0.3)
    assert store.get("c") is None and store.size() == 0


def test_risk_grade_bands():
    from serve.preprocess import risk_grade

    assert [risk_grade(p) for p in (0.01, 0.07, 0.12, 0.17, 0.25, 0.35, 0.9)] == list("ABCDEFG")


def test_knowledge_base_covers_banking77():
    import json

    from actors.data_root import resolve_data_root
    from serve.tasks import load_knowledge_base

    kb = load_knowledge_base()
    assert len(kb) == 77 and all(e["answer"].strip() for e in kb)
    try:
        cats = json.loads((resolve_data_root(None) / "banking77" / "categories.json").read_text())
    except Exception:
        pytest.skip("no banking77 data")
    assert [e["intent"] for e in kb] == cats


def test_build_writes_serve_config(model_bundle, tmp_path):
    from rich.console import Console

    from finmm.config import FinMMSettings
    from finmm.serve_command import run_serve

    out = tmp_path / "serve_config.yaml"
    assert run_serve(FinMMSettings(), model_bundle, out, Console(file=open(tmp_path / "log", "w"))) == 0
    config = yaml.safe_load(out.read_text())
    app = config["applications"][0]
    assert app["import_path"] == "serve.app:build_app"
    assert app["runtime_env"]["env_vars"]["FINMM_MODEL_DIR"] == str(model_bundle.resolve())
    assert config["http_options"] == {"host": "127.0.0.1", "port": 8000}
    from serve.app import AppArgs

    AppArgs.model_validate(app["args"])


def test_serve_without_model_names_finetune(tmp_path):
    import io

    from rich.console import Console

    from finmm.config import FinMMSettings
    from finmm.serve_command import run_serve

    buf = io.StringIO()
    assert run_serve(FinMMSettings(), tmp_path / "nothing", None, Console(file=buf, width=300)) == 2
    assert "finmm finetune" in buf.getvalue()


def test_gate_auth_and_body_limit_in_process():
    import httpx
    from fastapi import FastAPI

    from serve.api import Gate

    inner = FastAPI()

    @inner.post("/v1/echo")
    async def echo():
        return {"ok": True}

    gate = Gate(inner, max_body_bytes=1024, api_keys=["k1"])

    async def run():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gate), base_url="http://t") as c:
            assert (await c.post("/v1/echo", json={})).status_code == 401
            assert (await c.post("/v1/echo", json={}, headers={"X-API-Key": "k1"})).status_code == 200
            big = await c.post("/v1/echo", content=b"x" * 5000, headers={"X-API-Key": "k1"})
            assert big.status_code == 413 and big.headers["x-request-id"]

    import asyncio

    asyncio.run(run())
