"""Fixtures of the reliability suite: the tiny served bundle (built by the serve tests' `build_bundle`) and
the app deployed once per module on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_helpers import REPO, free_port, load_file


@pytest.fixture(scope="session")
def reliability_bundle(ray_cluster, tmp_path_factory) -> Path:
    """A tiny four-head bundle from a real 32-rows-per-split slice of the data (same code as tests/serve)."""
    serve_fixtures = load_file(REPO / "tests" / "serve" / "conftest.py", "_finmm_serve_fixtures")
    return serve_fixtures.build_bundle(tmp_path_factory.mktemp("reliability"))


@pytest.fixture(scope="module")
def app_url(ray_cluster, reliability_bundle):
    """The whole Serve graph deployed from its config on a free loopback port, shut down after the module."""
    from ray import serve

    from serve.ops import deploy, serve_config
    from serve.settings import ServeSection

    port = free_port()
    deploy(serve_config(ServeSection(http={"host": "127.0.0.1", "port": port}), reliability_bundle))
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
