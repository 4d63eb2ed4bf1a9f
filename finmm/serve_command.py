"""`finmm serve` and `finmm scale`: run the Serve app, write its Serve config, change replica counts."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from rich.console import Console

from finmm.config import FinMMSettings

WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class ModelChoice:
    """The folder `finmm serve` loads, and the sentence that says why that one."""

    path: Path
    reason: str


def finetune_roots(settings: FinMMSettings) -> list[Path]:
    """Where finetuned bundles are written: finetune.output_dir (`finmm finetune`, default artifacts/finetune),
    then every artifacts/<name>/finetune (`finmm demo`: artifacts/demo/finetune, artifacts/demo-quick/finetune).
    Relative paths are taken from the working directory, as the commands that write them do."""
    roots: list[Path] = []
    for root in [Path(settings.finetune.output_dir), *sorted(Path("artifacts").glob("*/finetune"))]:
        if root.is_dir() and all(root.resolve() != r.resolve() for r in roots):
            roots.append(root)
    return roots


def finetuned_bundles(roots: list[Path]) -> list[Path]:
    """Every bundle (a folder holding model.safetensors) directly under `roots`, symlinks resolved (the `latest`
    link and the folder it names count once), a half-copied `<name>.tmp` left out; newest first by the mtime of
    its model.safetensors (the time its weights were saved), ties by path."""
    found: dict[Path, float] = {}
    for root in roots:
        for child in root.iterdir():
            weights = child / WEIGHTS
            if child.name.endswith(".tmp") or not weights.is_file():
                continue
            found.setdefault(child.resolve(), weights.stat().st_mtime)
    return sorted(found, key=lambda p: (-found[p], str(p)))


def _heads(folder: Path) -> str:
    try:
        heads = json.loads((folder / "config.json").read_text()).get("heads", {})
    except (OSError, json.JSONDecodeError):
        return "heads unknown (no readable config.json)"
    return "heads " + (", ".join(heads) or "none")


def choose_model_dir(settings: FinMMSettings, model_dir: Path | None = None,
                     environ: Mapping[str, str] | None = None) -> ModelChoice:
    """The model `finmm serve` loads. An explicit choice wins, in this order: --model-dir, serve.model_dir,
    $FINMM_MODEL_DIR (one that has no model.safetensors is an error, not a reason to look elsewhere). Without
    one, the newest finetuned bundle under `finetune_roots`. Raises FileNotFoundError when there is none."""
    from serve.preprocess import MODEL_DIR_ENV, resolve_model_dir

    environ = os.environ if environ is None else environ
    for source, value in (("--model-dir", model_dir), ("serve.model_dir", settings.serve.model_dir),
                          (f"${MODEL_DIR_ENV}", environ.get(MODEL_DIR_ENV))):
        if value:
            folder = resolve_model_dir(value)
            return ModelChoice(folder, f"given by {source} ({_heads(folder)})")
    roots = finetune_roots(settings)
    bundles = finetuned_bundles(roots)
    if not bundles:
        where = ", ".join(str(r) for r in roots) or f"{settings.finetune.output_dir} or artifacts/*/finetune"
        raise FileNotFoundError(
            f"no model to serve: no finetuned bundle (a folder with {WEIGHTS}) under {where}. Run `finmm finetune` "
            "or `finmm demo` first, or pass a save_pretrained folder with --model-dir / serve.model_dir.")
    newest = bundles[0]
    saved = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime((newest / WEIGHTS).stat().st_mtime))
    return ModelChoice(newest, f"the newest of {len(bundles)} finetuned bundle(s) under "
                               f"{', '.join(str(r) for r in roots)} (by the time its weights were saved: {saved}); "
                               f"{_heads(newest)}. --model-dir or serve.model_dir picks another.")


def _model_dir(settings: FinMMSettings, model_dir: Path | None, console: Console) -> Path | None:
    try:
        choice = choose_model_dir(settings, model_dir)
    except FileNotFoundError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return None
    console.print(f"model: {choice.path}\n  {choice.reason}", highlight=False)
    return choice.path


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
    import ray

    from finmm.ray_runtime import ensure_ray

    own_cluster = not ray.is_initialized() and not settings.cluster.address
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
        stop_serving(console, own_cluster)
    return 0


def stop_serving(console: Console, own_cluster: bool, drain_s: float = 6.0) -> None:
    """On SIGINT/SIGTERM: drain (new requests get 503, every admitted one is answered; at most `drain_s`),
    then stop. A local cluster this command started goes down whole (`ray.shutdown`, about 2 s); on a cluster
    it joined, only Serve is shut down. Measured within 10 s of the signal (tests/serve/test_serving_paths.py)."""
    import ray
    from ray import serve

    from serve.ops import drain

    t0 = time.monotonic()
    drained = drain(drain_s)
    console.print(f"stopping: {'drained' if drained else 'NOT drained'} in {time.monotonic() - t0:.1f} s",
                  highlight=False)
    if own_cluster:
        ray.shutdown()
    else:
        serve.shutdown()


def run_scale(settings: FinMMSettings, deployment: str, n: int, console: Console) -> int:
    """Set a deployment's replica count on the running app (joins cluster.address or the local cluster)."""
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
