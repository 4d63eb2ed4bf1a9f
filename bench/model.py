"""Model throughput: forward+backward samples/s, FLOPs per sample and CPU FLOP utilisation.

    PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python bench/model.py [--quick]

FLOPs are analytic, counting real (non-padding) tokens only:
    train FLOPs/sample = 6 * N_nonembedding * tokens + 6 * 2 * L * tokens * keys * D   (attention scores + AV)
where N_nonembedding are the encoder-block parameters (embedding lookups and the heads are excluded),
tokens = real tokens of the sample and keys = real tokens attended to (= tokens, key-padding mask).
Peak is this machine's measured dense matmul GFLOP/s in fp32 and bf16, measured in the same run.
Writes the markdown table to docs/benchmarks/model.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.config import FinMMConfig  # noqa: E402
from model.dummy import dummy_batch  # noqa: E402
from model.modeling import FinMMModel  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "model.md"


def matmul_peak(dtype: torch.dtype, n: int = 2048, seconds: float = 3.0) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    iters, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        iters += 1
    return 2 * n**3 * iters / (time.perf_counter() - t0) / 1e9


def train_flops(model: FinMMModel, batch: dict) -> float:
    """Analytic forward+backward FLOPs of the batch, real tokens only."""
    with torch.no_grad():
        mask = model(batch).mask  # (B, T)
    n_block = sum(p.numel() for p in model.encoder.parameters())
    cfg = model.config.encoder
    real = mask.sum(1).double()  # (B,) tokens per sample
    dense = 6 * n_block * real.sum()
    attention = 6 * 2 * cfg.num_layers * cfg.hidden_size * (real**2).sum()
    return float(dense + attention)


def bench(model: FinMMModel, batch: dict, seconds: float, dtype: torch.dtype | None) -> float:
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)

    def step():
        ctx = torch.autocast("cpu", dtype=dtype) if dtype else torch.autocast("cpu", enabled=False)
        with ctx:
            out = model(batch)
            loss = out.hidden_states.float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or steps < 2:
        step()
        steps += 1
    return steps / (time.perf_counter() - t0)  # steps/s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="timed seconds per case")
    ap.add_argument("--quick", action="store_true", help="1 s per case (smoke run)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="intra-op threads (1 by default: on a shared 2-core box, 2 OpenMP threads stall badly)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    secs = 1.0 if args.quick else args.seconds
    torch.manual_seed(0)
    peaks = {"fp32": matmul_peak(torch.float32, seconds=secs), "bf16": matmul_peak(torch.bfloat16, seconds=secs)}

    schema = {
        "numeric_features": [f"x{i}" for i in range(16)],
        "categorical_features": ["sector", "region"],
        "categorical_cardinalities": [12, 6],
    }
    cases = []
    for preset in ("tiny", "small"):
        cfg = FinMMConfig.from_preset(
            preset, tabular=schema, image={"image_size": 64, "patch_size": 8}, series={"max_len": 64}
        )
        model = FinMMModel(cfg)
        g = torch.Generator().manual_seed(0)
        text = dummy_batch(cfg, 16, ("text",), text_len=64, generator=g, ragged=False)
        multi = dummy_batch(cfg, 16, text_len=64, series_len=60, generator=g)  # ragged: real padding
        for name, batch in (("text 16x64", text), ("multimodal 16 (text<=64, img 64px, 18 tab, 60 days)", multi)):
            for prec, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
                sps = bench(model, batch, secs, dtype) * 16
                fl = train_flops(model, batch) / 16
                gflops = sps * fl / 1e9
                cases.append((preset, name, prec, sps, fl / 1e9, gflops, 100 * gflops / peaks[prec]))
                print(cases[-1], flush=True)

    lines = [
        "## Model throughput (bench/model.py)",
        "",
        f"Date: {datetime.date.today()}  ",
        "Command: `PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python bench/model.py`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs (shared), torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), load average at end "
        f"{os.getloadavg()[0]:.1f} (other jobs share the box)  ",
        f"Measured matmul peak: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s (2048^2 matmul)  ",
        "FLOPs: analytic, 6 x non-embedding (encoder) params x real tokens + 12 x L x D x real_tokens^2 "
        "(attention), padding excluded; training step = forward + backward + SGD step.",
        "",
        "| preset | batch | precision | samples/s | GFLOP/sample | achieved GFLOP/s | % of peak |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for p, n, prec, sps, fl, gf, util in cases:
        lines.append(f"| {p} | {n} | {prec} | {sps:.1f} | {fl:.3f} | {gf:.1f} | {util:.1f}% |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text("# Benchmarks: model\n\n" + text)


if __name__ == "__main__":
    main()
