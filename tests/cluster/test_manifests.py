"""The deployable manifests parse and carry the fields Ray and KubeRay require."""

from pathlib import Path

import yaml

MANIFESTS = Path(__file__).resolve().parents[2] / "cluster" / "manifests"


def load(name: str) -> dict:
    return yaml.safe_load((MANIFESTS / name).read_text())


def test_cluster_launcher_yaml_has_gpu_workers():
    config = load("ray-cluster-gpu.yaml")
    for key in ("cluster_name", "provider", "available_node_types", "head_node_type", "max_workers"):
        assert key in config
    assert config["head_node_type"] in config["available_node_types"]
    gpu_types = [t for t in config["available_node_types"].values() if t.get("resources", {}).get("GPU", 0) > 0]
    assert gpu_types, "no node type offers GPUs"
    assert any("ray start --head" in c for c in config["head_start_ray_commands"])


def test_rayjob_runs_pretrain_and_finetune_on_gpus():
    job = load("rayjob-train.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert "finmm.cli pretrain" in spec["entrypoint"] and "finmm.cli finetune" in spec["entrypoint"]
    cluster = spec["rayClusterSpec"]
    assert "headGroupSpec" in cluster and cluster["workerGroupSpecs"]
    limits = cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert "nvidia.com/gpu" in limits


def test_rayservice_points_at_the_serve_app():
    service = load("rayservice.yaml")
    assert service["apiVersion"] == "ray.io/v1" and service["kind"] == "RayService"
    serve_config = yaml.safe_load(service["spec"]["serveConfigV2"])
    app = serve_config["applications"][0]
    assert app["import_path"] == "serve.app:build_app"
    assert app["route_prefix"] == "/"
    assert "headGroupSpec" in service["spec"]["rayClusterConfig"]
