"""Which precision a CPU or GPU can train and serve in. Pure torch; no Ray."""

from __future__ import annotations

from pathlib import Path

import torch

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
"""/proc/cpuinfo flags of native bfloat16 matmuls that oneDNN uses."""


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bfloat16 matmuls (AMX or AVX512-BF16) that oneDNN can use."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in BF16_CPU_FLAGS)


def resolve_precision(precision: str, use_gpu: bool) -> str:
    """`auto` -> "bf16-mixed" on a CPU with native bf16 (fp32 otherwise), "bf16" on a GPU that supports it.
    Other values are returned unchanged."""
    if precision != "auto":
        return precision
    if use_gpu:
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16-mixed" if cpu_supports_bf16() else "fp32"


def autocast(precision: str):
    """The forward's autocast context: bf16 matmuls over fp32 weights for "bf16-mixed", else a no-op."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
