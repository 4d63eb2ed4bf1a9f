"""`finmm serve` and `finmm scale`: run the Serve app, write its Serve config, change replica counts."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import yaml
from rich.console import Console

from finmm.config import FinMMSettings


def _model_dir(settings: FinMMSettings, model_dir: Path | None, console: Console) -> Path | None:
    import os

    from serve.preprocess import MODEL_DIR_ENV, resolve_model_dir

    try:
        return resolve_model_dir(model_dir or settings.serve.model_dir or os.environ.get(MODEL_DIR_ENV))
    except FileNotFoundError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return None


def run_serve(settings: FinMMSettings, model_dir: Path | None, build_path: Path | None, console: Console,
              config_path: Path | None = None, wait: bool = True) -> int:
    """Serve the model folder on serve.http.host:port until interrupted, or with `build_path` only write the
    Serve config for `serve deploy`. Exit codes: 0 ok, 2 no model folder, 1 deploy failed."""
    from serve.ops import deploy, serve_config

    folder = _model_dir(settings, model_dir, console)
    if folder is None:
        return 2
    config = serve_config(settings.serve, folder, config_path)
    if build_path is not None:
        Path(build_path).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        console.print(f"wrote {build_path}: deploy it with `serve deploy {build_path}` (import_path "
                      f"serve.app:build_app, model {folder})", highlight=False)
        return 0
    from finmm.ray_runtime import ensure_ray

    ensure_ray(settings.cluster)
    try:
        deploy(config)
    except Exception as exc:  # deploy failures are reported, not raised at the user
        console.print(f"[bold red]deploy failed:[/] {exc}", highlight=False)
        return 1
    http = settings.serve.http
    console.print(f"finmm is serving {folder} at http://{http.host}:{http.port}/ (docs at /docs). "
                  "Ctrl-C or SIGTERM stops it.", highlight=False)
    if wait:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        from ray import serve

        serve.shutdown()
    return 0


def run_scale(settings: FinMMSettings, deployment: str, n: int, console: Console) -> int:
    """Set a deployment's replica count on the running app (joins cluster.address or the local cluster)."""
    import os

    import ray

    from serve.ops import scale

    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(address=settings.cluster.address or "auto", log_to_driver=False)
    try:
        running = scale(deployment, n)
    except (ValueError, RuntimeError, TimeoutError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 1
    console.print(f"{deployment}: {running} replica(s) running", highlight=False)
    return 0
