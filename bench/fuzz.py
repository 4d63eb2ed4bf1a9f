"""Fuzzing at depth: the schemathesis CLI over the served graph's /openapi.json with every check.

`schemathesis run --checks all --mode all` (positive and negative data) with all four phases (examples,
coverage, fuzzing, and stateful over the schema's OpenAPI links: a customer-service answer links to the next
turn of its conversation), on the whole Serve graph over real HTTP on 127.0.0.1. Images are drawn as real
PNG/JPEG (bench/fuzz_hooks.py), except in the coverage phase, which draws pattern-valid base64 that is no
image: that is the documented 400 outside JSON Schema, so positive_data_acceptance admits 400
(schemathesis.toml, written next to the report) and the run fails on any 400 but that one and the UTF-8 one.
It reports the generated test cases, the requests sent by status and by operation (from the HAR report),
failures and errors, and exits 1 unless there are none.

    python bench/fuzz.py                                   # starts its own app on a tiny bundle (bench/load.py)
    python bench/fuzz.py --url http://127.0.0.1:8000 --examples 200 --json artifacts/bench/fuzz/summary.json

The short version runs in `make test` (tests/serve/test_app.py -k schemathesis).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import load as load_bench  # bench/load.py: start_app, wait_ready, check_target

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
PHASES = "examples,coverage,fuzzing,stateful"


CONFIG = """# written by bench/fuzz.py
[cache]
directory = "{cache}"

# A base64 image that does not decode is the documented 400 outside JSON Schema (serve/schemas.py): the
# coverage phase draws pattern-valid base64 that is no PNG/JPEG. bench/fuzz.py checks that every 400 of the
# run is exactly that refusal (or a body that is not UTF-8), so this admits nothing else.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
"""
REFUSALS_400 = {"not a PNG or JPEG image", "request body is not valid UTF-8"}
"""The only 400s the API gives (serve/api.py, serve/preprocess.py); any other 400 fails the run."""


def schemathesis_command(url: str, examples: int, seed: int, workers: int, report_dir: Path,
                         exclude_path_regex: str | None = None) -> list[str]:
    config = report_dir / "schemathesis.toml"
    config.write_text(CONFIG.format(cache=report_dir / "cache"))
    return [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config), "run",
            f"{url}/openapi.json", "--checks", "all", "--mode", "all", "--phases", PHASES,
            "--max-examples", str(examples), "--seed", str(seed), "--workers", str(workers),
            "--generation-database", "none", "--request-timeout", "60", "--suppress-health-check", "all",
            "--no-color", "--report", "json,har", "--report-json-path", str(report_dir / "report.json"),
            "--report-har-path", str(report_dir / "requests.har"),
            *(["--exclude-path-regex", exclude_path_regex] if exclude_path_regex else [])]


def statuses_from_har(path: Path, declared: set[str]) -> dict:
    """Requests sent, by status and by operation (methods the schema does not declare, which the
    unsupported_method check sends, counted together), customer-service turns that carried a
    conversation_id, and the 400s by error, from schemathesis' HAR report."""
    entries = json.loads(path.read_text())["log"]["entries"]
    by_status = Counter(str(e["response"]["status"]) for e in entries)
    by_op: Counter = Counter()
    errors_400: Counter = Counter()
    turns = 0
    for e in entries:
        op = f"{e['request']['method']} /{e['request']['url'].split('?')[0].split('/', 3)[-1]}"
        by_op[op if op in declared else "undeclared methods"] += 1
        text = (e["request"].get("postData") or {}).get("text") or ""
        turns += op == "POST /v1/customer-service" and '"conversation_id": "' in text.replace('":"', '": "')
        if e["response"]["status"] == 400:
            try:
                errors_400[json.loads(e["response"]["content"].get("text") or "{}").get("error", "?")] += 1
            except ValueError:
                errors_400["(not JSON)"] += 1
    return {"requests": len(entries), "requests_by_status": dict(sorted(by_status.items())),
            "requests_by_operation": dict(sorted(by_op.items())), "400_by_error": dict(errors_400),
            "customer_service_requests_with_conversation_id": turns}


def run_fuzz(url: str, examples: int, seed: int, workers: int, report_dir: Path, log: Path,
             exclude_path_regex: str | None = None) -> dict:
    report_dir.mkdir(parents=True, exist_ok=True)
    cmd = schemathesis_command(url, examples, seed, workers, report_dir, exclude_path_regex)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "fuzz_hooks",
           "PYTHONPATH": os.pathsep.join([str(BENCH), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    with log.open("w") as out:
        rc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    wall = time.perf_counter() - t0
    report = json.loads((report_dir / "report.json").read_text())
    spec = httpx.get(f"{url}/openapi.json", timeout=30).json()
    declared = {f"{m.upper()} {p}" for p, ops in spec["paths"].items() for m in ops}
    links = sum(len(r.get("links", {})) for ops in spec["paths"].values() for o in ops.values()
                for r in o.get("responses", {}).values())
    har = statuses_from_har(report_dir / "requests.har", declared)
    other_400 = {k: n for k, n in har["400_by_error"].items() if k not in REFUSALS_400}
    return {"command": " ".join(cmd[1:]).replace(url, "URL"), "exit_code": rc, "wall_s": round(wall, 1),
            "schemathesis": report["schemathesis_version"], "operations": report["operations"],
            "phases": report["phases"], "test_cases": report["test_cases"], **har, "other_400": other_400,
            "openapi_links": links, "failures": report["failures"], "errors": report["errors"],
            "warnings": {k: v for k, v in report["warnings"].items() if v}, "log": str(log)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="A running app (loopback). Default: start one on a local Ray cluster.")
    ap.add_argument("--examples", type=int, default=150, help="schemathesis --max-examples (per operation)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--exclude-path-regex", help="Leave these operations out (schemathesis' own option).")
    ap.add_argument("--work", default=str(ROOT / "artifacts" / "bench" / "fuzz"))
    ap.add_argument("--json", help="Also write the summary here.")
    args = ap.parse_args(argv)
    load_bench.check_target(args.url or "http://127.0.0.1", 1, 1)
    work = Path(args.work)
    url = args.url or load_bench.start_app("tiny", work / "tiny")[0]
    try:
        asyncio.run(load_bench.run_load(url, clients=2, seconds=3.0, seed=99))  # warm-up: every endpoint once
        summary = {"url": url, **run_fuzz(url, args.examples, args.seed, args.workers, work / "report",
                                          work / "schemathesis.log", args.exclude_path_regex)}
        load_bench.wait_ready(url, timeout_s=30)  # the replicas are still healthy after it
    finally:
        if args.url is None:
            import ray
            from ray import serve

            serve.shutdown()
            ray.shutdown()
    summary["passed"] = (summary["exit_code"] == 0 and not summary["failures"] and not summary["errors"]
                         and not summary["other_400"])
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2))
    if not summary["passed"]:
        print(f"FAILED: exit code {summary['exit_code']}; see {summary['log']}", file=sys.stderr)
    return summary


if __name__ == "__main__":
    sys.exit(0 if main()["passed"] else 1)
