"""The serving paths of issue 17 over real HTTP on 127.0.0.1: length-bucketed batches, one backbone call per
customer-service answer, 503 for a head the bundle lacks (one deployment per layout, one_hop and fused, of a
bundle without the credit and stock heads), and `finmm serve` stopping on SIGTERM under load without losing a
request."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.timeout(300)
REPO = Path(__file__).resolve().parents[2]
DROPPED = ("credit_risk", "stock_movement")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def without_heads(bundle: Path, out: Path, dropped: tuple[str, ...]) -> Path:
    """A copy of `bundle` whose model has no `dropped` heads (config.json and weights), as a finetune of the
    other tasks would save it."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(bundle, out)
    config = json.loads((out / "config.json").read_text())
    config["heads"] = {k: v for k, v in config["heads"].items() if k not in dropped}
    (out / "config.json").write_text(json.dumps(config))
    weights = load_file(out / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith(tuple(f"heads.{h}." for h in dropped))},
              out / "model.safetensors", metadata={"format": "pt"})
    return out


@pytest.fixture(scope="module", params=["one_hop", "fused"])
def url(request, ray_cluster, model_bundle, tmp_path_factory):
    """The graph in each layout: one_hop (Ingress -> Backbone replica) and fused (the batcher and model in the
    ingress replica), so every test below holds for both."""
    from ray import serve

    from serve.ops import deploy, serve_config
    from serve.settings import ServeSection
    bundle = without_heads(model_bundle, tmp_path_factory.mktemp("headless") / "bundle", DROPPED)
    port = free_port()
    deploy(serve_config(ServeSection(layout=request.param, http={"host": "127.0.0.1", "port": port}), bundle))
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


def _stats(url: str) -> dict:
    return httpx.get(f"{url}/v1/stats", timeout=30).json()["backbone"]


TEXTS = ["Profits rose", "Shares fell sharply after the company cut its guidance for the third time this year, "
         "citing weak demand in every region and rising costs", "Outlook unchanged", "利润大幅下降",
         "Net sales decreased by 12 % in the third quarter while operating margin fell to 3 percent as raw "
         "material costs rose and the board approved a dividend unchanged from last year", "Good"] * 2


def test_a_mixed_batch_of_short_and_long_texts_answers_as_single_requests(url):
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            return await asyncio.gather(*(c.post("/v1/sentiment", json={"text": t, "explain": i % 2 == 0})
                                          for i, t in enumerate(TEXTS)))

    before = _stats(url)
    together = asyncio.run(burst())
    assert all(r.status_code == 200 for r in together), [r.text for r in together]
    after = _stats(url)
    assert after["max_batch_size"] > 1 and after["forwards"] - before["forwards"] > after["batches"] - before[
        "batches"], (before, after)  # batched, and split into length buckets
    with httpx.Client(base_url=url, timeout=60) as c:
        for i, (text, joint) in enumerate(zip(TEXTS, together, strict=True)):
            alone = c.post("/v1/sentiment", json={"text": text, "explain": i % 2 == 0}).json()["results"][0]
            got = joint.json()["results"][0]
            for k, p in alone["probabilities"].items():  # bf16: padding changes the rounding a little
                assert abs(got["probabilities"][k] - p) < 0.02, (text, got, alone)
            assert [w["word"] for w in got["words"]] == [w["word"] for w in alone["words"]]


def test_a_customer_service_answer_makes_one_backbone_call(url):
    with httpx.Client(base_url=url, timeout=60) as c:
        assert c.post("/v1/customer-service", json={"message": "warm up the knowledge base"}).status_code == 200
        for body in ({"message": "I lost my card"}, {"message": "and when?", "conversation_id": "one-call"}):
            before = _stats(url)["calls"]
            r = c.post("/v1/customer-service", json=body)
            assert r.status_code == 200, r.text
            assert r.json()["sentiment"] in ("negative", "neutral", "positive") and r.json()["intent"]
            assert _stats(url)["calls"] - before == 1


def test_an_endpoint_whose_head_the_bundle_lacks_answers_503_naming_the_finetune(url):
    with httpx.Client(base_url=url, timeout=60) as c:
        r = c.post("/v1/credit-risk", json={"features": {"loan_amnt": 1000}})
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert "no credit_risk head" in error and "finmm finetune --tasks credit_risk" in error, error
        assert r.json()["request_id"] == r.headers["x-request-id"]
        bars = [[10 + i, 11 + i, 9 + i, 10.5 + i, 1000] for i in range(10)]
        r = c.post("/v1/stock-movement", json={"ticker": "A", "bars": bars})
        assert r.status_code == 503 and "finmm finetune --tasks stock_movement" in r.json()["error"]
        assert c.post("/v1/sentiment", json={"text": "fine"}).status_code == 200


# ----------------------------------------------------------------------------- SIGTERM under load
def test_finmm_serve_stops_within_10_s_of_sigterm_answering_every_accepted_request(model_bundle, tmp_path):
    """A real `finmm serve` (its own local Ray cluster) under 8 clients gets SIGTERM: every request sent before
    the signal is answered 200, later ones 200 or 503 (draining) or refused, and the process exits within 10 s."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "finmm.cli", "serve", "--model-dir", str(model_bundle),
                             f"serve.http.port={port}", "cluster.num_cpus=2"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert proc.poll() is None and httpx.get(f"{url}/readyz").status_code == 200, (
            (tmp_path / "serve.log").read_text()[-3000:])
        records: list[tuple[float, float, int]] = []
        stop = threading.Event()

        async def clients() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=30) as c:
                async def one(i: int) -> None:
                    while not stop.is_set():
                        start = time.monotonic()
                        try:
                            status = (await c.post("/v1/sentiment", json={"text": f"Profit rose {i}",
                                                                          "explain": i % 2 == 0})).status_code
                        except httpx.HTTPError:
                            status = 0
                        records.append((start, time.monotonic(), status))
                        if status != 200:
                            await asyncio.sleep(0.05)

                await asyncio.gather(*(one(i) for i in range(8)))

        runner = threading.Thread(target=lambda: asyncio.run(clients()))
        runner.start()
        time.sleep(3.0)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        exited = time.monotonic() - signalled
        stop.set()
        runner.join(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    output = (tmp_path / "serve.log").read_text()
    before = [r for r in records if r[0] < signalled]
    assert len(before) > 8, len(before)
    assert all(r[2] == 200 for r in before), ([r for r in before if r[2] != 200], output[-3000:])
    assert all(r[2] in (200, 503, 0) for r in records)
    assert proc.returncode == 0 and exited < 10, (exited, output[-3000:])
    assert "drained" in output
