"""Operating the app: the Serve config (what `finmm serve --build` writes and `serve deploy` reads), deploying
it declaratively on the current Ray cluster, and changing a deployment's replica count in place.

The app is always deployed from a config (import path `serve.app:build_app` + args), as `serve deploy` and
RayService do, so that `scale` is a lightweight update: only `deployments[].num_replicas` changes and the
other replicas keep running.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from serve.app import APP_NAME, DEPLOYMENTS
from serve.preprocess import MODEL_DIR_ENV
from serve.settings import ServeSection

REPO_ROOT = Path(__file__).resolve().parent.parent
IMPORT_PATH = "serve.app:build_app"


def serve_config(section: ServeSection, model_dir: Path, config_path: Path | None = None,
                 local: bool = True) -> dict[str, Any]:
    """A Ray Serve multi-application config (ServeDeploySchema) for the finmm app.

    local=True puts this checkout on the workers' PYTHONPATH (a local cluster); for a remote cluster the
    runtime_env's working_dir or the image provides the code (see cluster/manifests/rayservice.yaml)."""
    env = {MODEL_DIR_ENV: str(Path(model_dir).resolve())}
    if local:
        env["PYTHONPATH"] = str(REPO_ROOT)
    args: dict[str, Any] = {"model_dir": str(Path(model_dir).resolve()), "serve": section.model_dump(mode="json")}
    if config_path is not None:
        args["config_path"] = str(Path(config_path).resolve())
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": section.http.host, "port": section.http.port},
        "applications": [{
            "name": APP_NAME,
            "route_prefix": "/",
            "import_path": IMPORT_PATH,
            "runtime_env": {"env_vars": env},
            "logging_config": {"enable_access_log": section.access_log},
            "args": args,
        }],
    }


def _client():
    from ray.serve.context import _get_global_client

    return _get_global_client()


def deploy(config: dict[str, Any], timeout_s: float = 300) -> None:
    """Start Serve (HTTP on the config's host:port) if needed, apply the config, wait until RUNNING."""
    from ray import serve
    from ray.serve.schema import ServeDeploySchema

    serve.start(http_options=config.get("http_options", {}))
    _client().deploy_apps(ServeDeploySchema.model_validate(config))
    wait_running(timeout_s)


def wait_running(timeout_s: float = 300, name: str = APP_NAME) -> None:
    from ray import serve

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app = serve.status().applications.get(name)
        if app is not None and app.status == "RUNNING":
            return
        if app is not None and app.status == "DEPLOY_FAILED":
            raise RuntimeError(f"application {name} failed to deploy: {app.message}")
        time.sleep(0.5)
    raise TimeoutError(f"application {name} is not RUNNING after {timeout_s:.0f}s")


def deployed_config() -> dict[str, Any]:
    """The config the running finmm app was deployed with (ServeDeploySchema dict)."""
    details = _client().get_serve_details()
    app = (details.get("applications") or {}).get(APP_NAME)
    if app is None or not app.get("deployed_app_config"):
        raise RuntimeError(f"no running Serve application named {APP_NAME!r} (deployed from a config)")
    return {"http_options": {k: v for k, v in (details.get("http_options") or {}).items() if k in ("host", "port")},
            "applications": [app["deployed_app_config"]]}


def scale(deployment: str, n: int, timeout_s: float = 120) -> int:
    """Set `deployment`'s replica count on the running app (turns autoscaling off for it) and wait until
    that many replicas run. Returns the running count."""
    from ray import serve

    app = serve.status().applications.get(APP_NAME)
    running = list(app.deployments) if app is not None else list(DEPLOYMENTS)
    if deployment not in running:
        raise ValueError(f"unknown deployment {deployment!r}; the running app has {', '.join(running)} (the task "
                         "deployments exist only with serve.layout: split; with layout fused the Backbone runs "
                         "inside each Ingress replica: scale Ingress)")
    if deployment == "ConversationStore" and n != 1:
        raise ValueError("ConversationStore holds the conversation state and runs exactly one replica")
    if deployment.startswith("OpinionMonitor") and n != 1:
        raise ValueError(f"{deployment} owns its tickers' state (one SQLite file) and runs exactly one replica; "
                         "more shards: set serve.opinion.shards and replay into a fresh state_dir")
    config = deployed_config()
    app = config["applications"][0]
    entries = [d for d in app.get("deployments") or [] if d.get("name") != deployment]
    entries.append({"name": deployment, "num_replicas": n})
    app["deployments"] = entries
    from ray.serve.schema import ServeDeploySchema

    _client().deploy_apps(ServeDeploySchema.model_validate(config))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = replicas(deployment)
        if running == n:
            return running
        time.sleep(0.5)
    raise TimeoutError(f"{deployment} did not reach {n} running replicas in {timeout_s:.0f}s")


def replicas(deployment: str) -> int:
    """Running replicas of one deployment of the finmm app (serve.status())."""
    from ray import serve

    app = serve.status().applications.get(APP_NAME)
    if app is None or deployment not in app.deployments:
        return 0
    return int(app.deployments[deployment].replica_states.get("RUNNING", 0))


def set_user_config(deployment: str, user_config: dict[str, Any]) -> None:
    """Lightweight update of one deployment's user_config (e.g. Ingress API-key sources)."""
    config = deployed_config()
    app = config["applications"][0]
    entries = [d for d in app.get("deployments") or [] if d.get("name") != deployment]
    current = next((d for d in app.get("deployments") or [] if d.get("name") == deployment), {"name": deployment})
    entries.append({**current, "user_config": user_config})
    app["deployments"] = entries
    from ray.serve.schema import ServeDeploySchema

    _client().deploy_apps(ServeDeploySchema.model_validate(config))
    wait_running()


def drain(timeout_s: float = 6.0, poll_s: float = 0.05) -> bool:
    """Stop the running app's ingress replicas admitting requests (new ones get 503) and wait until each has
    answered every request it admitted. True when drained within `timeout_s`. Calls Ingress.drain through a
    handle until every running ingress replica has answered with nothing in flight."""
    from ray import serve

    handle = serve.get_deployment_handle("Ingress", APP_NAME)
    deadline = time.monotonic() + timeout_s
    latest: dict[str, int] = {}
    running = max(replicas("Ingress"), 1)
    while time.monotonic() < deadline:
        try:
            answer = handle.drain.remote().result(timeout_s=max(deadline - time.monotonic(), 0.1))
        except Exception:  # a replica gone, or the deadline: report what is known
            break
        latest[answer["replica"]] = answer["in_flight"]
        if len(latest) >= running and not any(latest.values()):
            return True
        time.sleep(poll_s)
    return False
