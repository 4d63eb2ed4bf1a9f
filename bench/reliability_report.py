"""Regenerate docs/reliability.md: run the reliability suite (tests/reliability) and the load test, then write
one table each of load held, faults survived and bad inputs tried. The page's part below `MARK` (the dated runs
recorded with their commands, the known gaps, how each guarantee is kept) is kept as it is.

    python bench/reliability_report.py                       # suite + 60 s x 32 clients load (~6 min on 2 CPUs)
    python bench/reliability_report.py --seconds 20 --clients 8 --examples 25

The suite runs first (its tests leave their measured figures in a JSON-lines file named by
$FINMM_RELIABILITY_FIGURES), then bench/load.py in its own process with its own local Ray cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


MARK = ("<!-- Everything above this line is written by `python bench/reliability_report.py`; everything below it "
        "is kept as it is. -->")
"""The generated tables end here; the dated runs recorded by hand (fuzz, soak, control-plane faults, disk full,
killed driver...), the known gaps and how each guarantee is kept follow it and survive a regeneration."""


def run_suite(figures: Path, junit: Path, examples: int, kill_seconds: float) -> dict:
    env = {**os.environ, "FINMM_RELIABILITY_FIGURES": str(figures), "FINMM_SCHEMATHESIS_EXAMPLES": str(examples),
           "FINMM_KILL_LOAD_S": str(kill_seconds), "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/reliability", "-q", "-p", "no:randomly",
                           f"--junitxml={junit}"], cwd=ROOT, env=env)
    suite = ET.parse(junit).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    return {"exit": proc.returncode, "tests": int(suite.get("tests", 0)), "failures": int(suite.get("failures", 0)),
            "errors": int(suite.get("errors", 0)), "skipped": int(suite.get("skipped", 0)),
            "time_s": round(float(suite.get("time", 0)), 1)}


def run_load(out: Path, clients: int, seconds: float, bundle: str) -> dict:
    subprocess.run([sys.executable, str(ROOT / "bench" / "load.py"), "--clients", str(clients), "--seconds",
                    str(seconds), "--bundle", bundle, "--json", str(out)], cwd=ROOT, check=True)
    return json.loads(out.read_text())


def read_figures(path: Path) -> dict[str, dict]:
    figures: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            item = json.loads(line)
            figures[item.pop("name")] = item
    return figures


def _ms(s: dict) -> str:
    return f"{s['p50_ms']:.0f} / {s['p95_ms']:.0f} / {s['p99_ms']:.0f}"


def write_doc(path: Path, suite: dict, load: dict | None, figures: dict[str, dict], command: str,
              examples: int) -> None:
    lines = ["# Reliability", "",
             f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by `{command}` on {os.cpu_count()} CPUs "
             f"(Python {platform.python_version()}, no GPU). Regenerate with that one command.", "",
             f"Suite: `pytest tests/reliability`: {suite['tests']} tests, {suite['failures']} failed, "
             f"{suite['errors']} errors, {suite['skipped']} skipped or expected to fail (see Known gaps), "
             f"{suite['time_s']} s (with {examples} schemathesis examples per operation; `make test` runs 12).", "",
             "## Load held", "",
             "| what | clients | seconds | requests | req/s | errors | p50 / p95 / p99 ms |",
             "|---|---|---|---|---|---|---|"]
    if load:
        errs = ", ".join(f"{k}: {v}" for k, v in load["errors_by_status"].items()) or "none"
        lines.append(f"| `bench/load.py`, mix of the 4 endpoints, {load.get('preset') or 'external'} bundle | "
                     f"{load['clients']} | {load['seconds']:g} | {load['requests']} | {load['rps']} | "
                     f"{load['errors']} ({errs}) | {_ms(load)} |")
        for endpoint, s in load["per_endpoint"].items():
            lines.append(f"| &nbsp;&nbsp;{endpoint} | | | {s['requests']} | | {s['errors']} | {_ms(s)} |")
    kill = figures.get("replica_kill")
    if kill:
        o = kill["overall"]
        lines.append(f"| load during the Backbone kill (below) | {kill['clients']} | {kill['seconds']:g} | "
                     f"{o['requests']} | {o['rps']} | {o['errors']} | {_ms(o)} |")
    lines += ["", "## Faults survived", "", "| fault | what happened | lost |", "|---|---|---|"]
    if kill:
        w = kill["window"]
        lines.append(f"| Backbone replica process SIGKILLed under load | Serve started a new replica "
                     f"{kill['replaced_after_s']} s later; {w['requests']} requests in flight during the kill window "
                     f"(kill → replaced + 2 s): {w['errors']} errors, p50 {w['p50_ms']:.0f} ms, p99 "
                     f"{w['p99_ms']:.0f} ms (the slowest waited for the new replica); "
                     f"{kill.get('retried_calls', '?')} calls that hit the dead replica were retried "
                     f"(serve/deployments.py `retry_idempotent`) | 0 requests |")
    head = figures.get("head_loss")
    if head:
        lines.append(f"| Ray head killed while `finmm submit` follows a job | exit code {head['exit_code']} after "
                     f"{head['reported_after_s']} s: \"{head['message']}\", no traceback | nothing to lose (client) |")
    lines.append("| Training worker killed mid-run | Ray Train restarts the worker group from the last checkpoint; "
                 "the run completes (tests/cluster/test_training.py::"
                 "test_killed_worker_is_replaced_and_the_run_completes) | steps since the last checkpoint, redone |")
    if figures.get("checkpoint_kill"):
        lines.append("| Checkpoint save SIGKILLed halfway; save failing before its checksums; copy stopped mid-file "
                     "| the previous checkpoint stays the latest, verifies and loads "
                     "| the interrupted checkpoint only |")
        lines.append("| One flipped bit in a checkpoint file | `verify_checkpoint` names the file (sha256 mismatch) "
                     "before resume or export; the previous export is untouched | nothing |")
    lines += ["", "## Bad inputs tried", "", "| input | where | result |", "|---|---|---|"]
    hostile = figures.get("hostile_input")
    if hostile:
        lines.append(f"| {hostile['cases']} hand-picked bodies: {', '.join(hostile['names'])} | HTTP API | "
                     "4xx with the error shape (200 for valid Unicode text); no 5xx; replicas healthy after |")
    st = figures.get("schemathesis")
    if st:
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(st["statuses"].items()))
        lines.append(f"| schemathesis {st['version']}: {st['examples']} generated requests over {st['operations']} "
                     f"operations of /openapi.json | HTTP API | no 5xx; responses match their schema and content "
                     f"type (statuses {codes}) |")
    lines.append("| hypothesis: arbitrary JSON values and bytes (150 examples per property) | request models and the "
                 "FastAPI validation layer | only validation errors / 4xx; valid requests round-trip |")
    data = figures.get("data_safety")
    if data:
        refused = sum(1 for v in data["outcomes"].values() if v.startswith("DataFileError"))
        lines.append(f"| {data['cases']} broken copies of the raw data (truncated, UTF-16, latin-1, garbage, empty, "
                     f"missing field) | loaders of `finmm prepare` | {refused} refused with a DataFileError naming "
                     f"data set, file and problem; {data['cases'] - refused} loaded with every record accounted for "
                     "(read = accepted + rejected + sliced out, each reject with a reason) |")
        lines += ["", "<details><summary>Outcome per broken copy</summary>", "", "| case | outcome |", "|---|---|"]
        lines += [f"| {k} | {v.replace('|', '/')} |" for k, v in sorted(data["outcomes"].items())]
        lines += ["", "</details>"]
    kept = ""
    if path.exists():
        old = path.read_text(encoding="utf-8")
        kept = old[old.index(MARK) + len(MARK):].lstrip("\n") if MARK in old else ""
    lines += ["", MARK, "", kept.rstrip("\n"), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description="Run the reliability suite and the load test; write docs/reliability.md.")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--bundle", choices=("tiny", "small"), default="tiny")
    ap.add_argument("--examples", type=int, default=25, help="schemathesis examples per operation")
    ap.add_argument("--kill-seconds", type=float, default=30.0, help="load duration around the replica kill")
    ap.add_argument("--load-json", help="Reuse a bench/load.py --json result instead of running the load.")
    ap.add_argument("--out", default=str(ROOT / "docs" / "reliability.md"))
    args = ap.parse_args()
    command = "python bench/reliability_report.py" + "".join(
        f" {a}" for a in sys.argv[1:] if not a.startswith("--out"))
    with tempfile.TemporaryDirectory(prefix="finmm-reliability-") as tmp:
        figures_path, junit = Path(tmp) / "figures.jsonl", Path(tmp) / "junit.xml"
        suite = run_suite(figures_path, junit, args.examples, args.kill_seconds)
        figures = read_figures(figures_path)
        load = json.loads(Path(args.load_json).read_text()) if args.load_json else run_load(
            Path(tmp) / "load.json", args.clients, args.seconds, args.bundle)
    write_doc(Path(args.out), suite, load, figures, command, args.examples)
    ok = suite["exit"] == 0 and load["errors"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
