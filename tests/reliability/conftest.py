"""Fixtures of the reliability suite: the tiny served bundle (built by the serve tests' `build_bundle`) and
the app deployed once per module on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_helpers import free_port


@pytest.fixture(scope="session")
def reliability_bundle(served_bundle) -> Path:
    """The tiny four-head bundle from a real 32-rows-per-split slice (the serve tests' own, built once)."""
    return served_bundle


@pytest.fixture(scope="module")
def app_url(ray_cluster, reliability_bundle, tmp_path_factory):
    """The whole Serve graph deployed from its config on a free loopback port, shut down after the module."""
    from ray import serve

    from serve.ops import deploy, serve_config
    from serve.settings import ServeSection

    port = free_port()
    deploy(serve_config(ServeSection(http={"host": "127.0.0.1", "port": port},
                                    state_dir=tmp_path_factory.mktemp("serve-state")), reliability_bundle))
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
