"""Serve test fixtures: a tiny four-head bundle built from real prepared data (no Ray Train)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

DATASETS = ["lending_club", "financial_phrasebank", "banking77", "stocknet"]
HEADS = {"credit_risk": {}, "stock_movement": {}, "sentiment": {}, "intent": {"num_classes": 77}}


def build_bundle(out: Path, preset: str = "tiny", init_from_minilm: bool = False, max_rows: int = 32) -> Path:
    """prepare() -> layout + preprocessing_state like cluster/trainer.py -> FinMMForTask -> save_bundle."""
    import torch

    from actors.manifest import TOKENIZER
    from actors.pipeline import prepare
    from actors.settings import DataSection
    from cluster.trainer import batch_layout, preprocessing_state
    from finmm.config import FinMMSettings
    from model.bundle import save_bundle
    from model.factory import build_model
    from model.settings import ModelSection

    data = DataSection(max_rows_per_split=max_rows, output_dir=out / "data")
    prepare(data, DATASETS, vocab_datasets=["financial_phrasebank", "banking77"])
    settings = FinMMSettings(data=data)
    layout = batch_layout(settings)
    state = preprocessing_state(settings, layout)
    from tokenizers import Tokenizer

    tok = out / "data" / TOKENIZER
    vocab = Tokenizer.from_file(str(tok)).get_vocab_size()
    torch.manual_seed(0)
    section = ModelSection(preset=preset, init_from_minilm=init_from_minilm, heads=HEADS)
    model = build_model(section, vocab, layout.tabular_schema(), kind="task").eval()
    return save_bundle(out / "bundle", model, tok, state)


@pytest.fixture(scope="session")
def model_bundle(served_bundle) -> Path:
    return served_bundle  # one build per session, shared with tests/reliability (tests/conftest.py)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(ray_cluster, model_bundle, tmp_path_factory):
    """The whole Serve graph deployed from the tiny bundle on a free 127.0.0.1 port, once per test module."""
    from ray import serve

    from serve.ops import deploy, serve_config
    from serve.settings import ServeSection

    port = free_port()
    deploy(serve_config(ServeSection(http={"host": "127.0.0.1", "port": port},
                                    state_dir=tmp_path_factory.mktemp("serve-state")), model_bundle))
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
