"""Control-plane faults under load: the Serve controller SIGKILLed, the HTTP proxy SIGKILLed, and the whole app
stopped and started again from its `serve deploy` config, each while bench/load.py's mix runs (8 clients).

For each fault it reports the requests in flight during or after it that failed, by HTTP status or by
httpx exception (ConnectError: refused, never accepted; ReadError, RemoteProtocolError, ReadTimeout: sent,
never answered, i.e. accepted and lost), the client-visible outage (fault to the end of the last failed
request sent before /readyz answered 200 again; failures sent after that are listed apart), and the time
until the control plane is back (a new controller that answers serve.status(), a new proxy that answers
/healthz, the app RUNNING and /readyz 200 again). Nothing but the fault itself is done for
the first two: whether Serve recovers by itself is what is measured. The restart is what an operator does
(`finmm serve` on SIGTERM, then `serve deploy config.yaml`): drain the ingress, shut Serve down, deploy the
config file again.

    python bench/control_plane.py                       # its own app on a tiny bundle, all three faults
    python bench/control_plane.py --faults proxy --seconds 40 --json artifacts/bench/control_plane/summary.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import load as load_bench  # bench/load.py: start_app, run_load, wait_ready
import yaml
from soak import serve_processes  # bench/soak.py: the Serve processes of this driver's cluster

ROOT = Path(__file__).resolve().parent.parent
FAULTS = ("controller", "proxy", "restart")
LOST = {"ReadError", "RemoteProtocolError", "ReadTimeout", "WriteError"}
"""httpx exceptions of a request that was sent and never answered."""


def pid_of(title: str) -> int | None:
    return next((pid for pid, t in serve_processes().items() if t == title), None)


def wait_for(check, timeout_s: float, poll_s: float = 0.2) -> float | None:
    """Seconds until check() is true (exceptions count as false), or None after timeout_s."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        try:
            if check():
                return time.monotonic() - t0
        except Exception:  # the control plane is down: keep polling
            pass
        time.sleep(poll_s)
    return None


def healthy(url: str) -> bool:
    return httpx.get(f"{url}/readyz", timeout=5).status_code == 200


def app_running() -> bool:
    from ray import serve

    from serve.app import APP_NAME

    app = serve.status().applications.get(APP_NAME)
    return app is not None and app.status == "RUNNING"


def kill(title: str) -> int:
    pid = pid_of(title)
    if pid is None:
        raise RuntimeError(f"no {title} process among this driver's descendants")
    os.kill(pid, signal.SIGKILL)
    return pid


def inject(fault: str, url: str, config_file: Path, timeout_s: float) -> dict:
    """Do the fault; return what was done and the seconds from the fault until each recovery check passed
    (checked one after another)."""
    from ray import serve

    from serve.ops import deploy, drain

    out: dict = {"fault": fault}
    t0 = time.monotonic()

    def since_fault(seconds: float | None) -> float | None:  # each wait starts when the previous one ended
        return None if seconds is None else round(time.monotonic() - t0, 2)

    if fault == "controller":
        old = kill("ray::ServeController")
        out["killed_pid"] = old
        out["new_controller_s"] = since_fault(
            wait_for(lambda: pid_of("ray::ServeController") not in (None, old), timeout_s))
        out["serve_status_s"] = since_fault(wait_for(app_running, timeout_s))
    elif fault == "proxy":
        old = kill("ray::ProxyActor")
        out["killed_pid"] = old
        out["new_proxy_s"] = since_fault(wait_for(lambda: pid_of("ray::ProxyActor") not in (None, old), timeout_s))
        out["healthz_s"] = since_fault(
            wait_for(lambda: httpx.get(f"{url}/healthz", timeout=5).status_code == 200, timeout_s))
    else:  # the operator's restart: drain, shut Serve down, `serve deploy` the config file again
        out["drained"] = drain()
        out["drain_s"] = round(time.monotonic() - t0, 2)
        serve.shutdown()
        out["down_s"] = round(time.monotonic() - t0, 2)
        deploy(yaml.safe_load(config_file.read_text()), timeout_s=timeout_s)
        out["deployed_s"] = round(time.monotonic() - t0, 2)
    out["readyz_s"] = since_fault(wait_for(lambda: healthy(url), timeout_s))
    return out


async def one_fault(fault: str, url: str, config_file: Path, clients: int, seconds: float, at_s: float) -> dict:
    t_fault: dict = {}
    done: dict = {}

    def fault_thread() -> None:
        time.sleep(at_s)
        t_fault["t"] = time.perf_counter()
        try:
            done.update(inject(fault, url, config_file, timeout_s=max(seconds - at_s - 5, 30)))
        except Exception as exc:  # reported, never raised past the load
            done.update({"fault": fault, "error": f"{type(exc).__name__}: {exc}"})

    thread = threading.Thread(target=fault_thread, daemon=True)
    thread.start()
    result = await load_bench.run_load(url, clients=clients, seconds=seconds, seed=FAULTS.index(fault))
    await asyncio.to_thread(thread.join, 300)
    at = t_fault["t"] - result.t0
    after = [(i, r) for i, r in enumerate(result.records) if r[1] >= at]  # answered (or failed) after the fault
    failed = [(i, r) for i, r in after if r[3] != 200]
    kinds: dict[str, int] = {}
    for i, r in failed:
        kind = result.exceptions.get(i, str(r[3]))
        kinds[kind] = kinds.get(kind, 0) + 1
    before = result.summary(0, at)
    back = done.get("readyz_s")
    recovered = at + back if back is not None else float("inf")
    late = [(i, r) for i, r in failed if r[0] >= recovered]  # sent after /readyz answered 200 again
    late_kinds: dict[str, int] = {}
    for i, r in late:
        late_kinds[result.exceptions.get(i, str(r[3]))] = late_kinds.get(result.exceptions.get(i, str(r[3])), 0) + 1
    per_second: dict[int, int] = {}
    for _, r in failed:
        per_second[int(r[1] - at)] = per_second.get(int(r[1] - at), 0) + 1
    return {**done, "fault_at_s": round(at, 1), "requests": len(result.records),
            "requests_before": before["requests"], "p50_before_ms": before["p50_ms"],
            "requests_after": len(after), "errors": len(failed), "errors_by_kind": kinds,
            "accepted_and_lost": sum(n for k, n in kinds.items() if k in LOST),
            "refused_unaccepted": kinds.get("ConnectError", 0) + kinds.get("ConnectTimeout", 0),
            "outage_s": round(max((r[1] for _, r in failed if r[0] < recovered), default=at) - at, 2),
            "errors_after_recovery": late_kinds, "errors_per_second_after_fault": per_second,
            "first_error_s": round(min((r[1] for _, r in failed), default=at) - at, 2),
            "p99_after_ms": result.summary(at, result.wall_s)["p99_ms"]}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faults", default=",".join(FAULTS), help=f"Comma-separated, of {', '.join(FAULTS)}.")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0, help="Load per fault.")
    ap.add_argument("--at", type=float, default=10.0, help="Seconds into the load when the fault is done.")
    ap.add_argument("--work", default=str(ROOT / "artifacts" / "bench" / "control_plane"))
    ap.add_argument("--json", help="Also write the summary here.")
    args = ap.parse_args(argv)
    faults = [f for f in args.faults.split(",") if f]
    if unknown := set(faults) - set(FAULTS):
        ap.error(f"unknown fault(s) {sorted(unknown)}; choose from {', '.join(FAULTS)}")
    from ray import serve

    from serve.ops import serve_config
    from serve.settings import ServeSection

    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    work = Path(args.work)
    url, bundle = load_bench.start_app("tiny", work / "tiny")
    port = int(url.rsplit(":", 1)[1])
    config_file = work / "serve_config.yaml"  # what `finmm serve --build` writes and `serve deploy` reads
    config_file.write_text(yaml.safe_dump(serve_config(ServeSection(http={"host": "127.0.0.1", "port": port}),
                                                       bundle)))
    rows = []
    try:
        asyncio.run(load_bench.run_load(url, clients=4, seconds=5.0, seed=99))  # warm-up
        for fault in faults:
            load_bench.wait_ready(url)
            rows.append(asyncio.run(one_fault(fault, url, config_file, args.clients, args.seconds, args.at)))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        import ray

        serve.shutdown()
        ray.shutdown()
    summary = {"started": started, "clients": args.clients, "seconds_per_fault": args.seconds,
               "fault_at_s": args.at, "faults": rows}
    load_bench.write_summary(summary, args.json)
    return summary


if __name__ == "__main__":
    main()
